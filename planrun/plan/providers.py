"""Providers: built-in presets merged with what the plan writes.

A provider named like a preset starts from that preset (``providers: {claude: {max_concurrent:
2}}`` needs no ``preset:``); every preset is also usable without being declared. Fields the
plan sets replace the preset's, except ``success``, ``failure`` and ``env``, which merge.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from planrun.errors import suggest
from planrun.plan.model import Provider
from planrun.plan.resolved import AnswerSpec, ProviderSpec

DEFAULT_PROMPT_TEMPLATE = """\
You are working on task {{ task.key }}: {{ task.title }}
{% if task.description %}
{{ task.description }}
{% endif %}
Work in the current directory, a git worktree made for this task. When you are done,
commit your work with a message that names {{ task.key }}.
"""

Problem = tuple[tuple[str | int, ...], str]


@cache
def preset_models() -> dict[str, Provider]:
    """The built-in presets, validated by the same model as plan providers."""
    from planrun.plan.presets import PRESETS

    return {name: Provider.model_validate(raw) for name, raw in PRESETS.items()}


def _merge(base: Provider | None, layer: Provider) -> dict[str, Any]:
    merged: dict[str, Any] = base.model_dump(exclude_unset=True) if base else {}
    for name in layer.model_fields_set:
        value = getattr(layer, name)
        if name in ("success", "failure") and value is not None and name in merged:
            merged[name] = {**merged[name], **value.model_dump(exclude_unset=True)}
        elif name == "env" and value is not None:
            merged[name] = {**merged.get(name, {}), **value}
        elif isinstance(value, list) and value and hasattr(value[0], "model_dump"):
            merged[name] = [v.model_dump() for v in value]
        elif hasattr(value, "model_dump"):
            merged[name] = value.model_dump(exclude_unset=True)
        else:
            merged[name] = value
    return merged


def resolve_providers(
    declared: dict[str, Provider],
) -> tuple[dict[str, ProviderSpec], list[Problem]]:
    presets = preset_models()
    problems: list[Problem] = []
    result = {
        name: _spec(name, name, preset.model_dump(exclude_unset=True))
        for name, preset in presets.items()
    }
    for name, provider in declared.items():
        preset_name = provider.preset or (name if name in presets else None)
        if preset_name is not None and preset_name not in presets:
            hint = suggest(preset_name, presets) or f"; presets: {', '.join(sorted(presets))}"
            problems.append(
                (("providers", name, "preset"), f"unknown preset {preset_name!r}{hint}")
            )
            continue
        merged = _merge(presets.get(preset_name) if preset_name else None, provider)
        if preset_name is None and not merged.get("command"):
            problems.append(
                (
                    ("providers", name),
                    f"provider {name!r} needs a command, or a preset to start from "
                    f"({', '.join(sorted(presets))})",
                )
            )
            continue
        result[name] = _spec(name, preset_name, merged)
    return result, problems


def _spec(name: str, preset: str | None, raw: dict[str, Any]) -> ProviderSpec:
    yolo = raw.get("yolo_flag") or ()
    success = raw.get("success") or {}
    failure = raw.get("failure") or {}
    return ProviderSpec(
        name=name,
        command=tuple(raw.get("command") or ()),
        prompt_via=raw.get("prompt_via") or "argv",
        prompt_command=tuple(raw["prompt_command"]) if raw.get("prompt_command") else None,
        yolo_flag=(yolo,) if isinstance(yolo, str) else tuple(yolo),
        autonomous_prompt_template=raw.get("autonomous_prompt_template") or DEFAULT_PROMPT_TEMPLATE,
        success_exit_codes=frozenset(success.get("exit_codes") or [0]),
        success_pattern=success.get("pattern"),
        failure_pattern=failure.get("pattern"),
        input_pattern=raw.get("input_pattern"),
        answers=tuple(AnswerSpec(a["expect"], a["send"]) for a in raw.get("answers") or ()),
        usage=raw.get("usage") or "none",
        max_concurrent=raw.get("max_concurrent"),
        backend=raw.get("backend"),
        env=tuple(sorted((raw.get("env") or {}).items())),
        secrets=tuple(raw.get("secrets") or ()),
        preset=preset,
    )
