"""Task keys after PLAN: ``apply PLAN --only a b`` and ``apply --only a b PLAN`` read as
``--only a --only b`` (:func:`spread_lists`), before argparse sees the words."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path


def key_list(text: str) -> list[str]:
    """One or more task keys: ``lint`` or ``lint,test`` (the value of --only, --force)."""
    keys = [key.strip() for key in text.split(",")]
    if not all(keys):
        raise argparse.ArgumentTypeError(f"{text!r}: a key is empty (write KEY or KEY,KEY)")
    return keys


def spread_lists(commands: Mapping[str, argparse.ArgumentParser], argv: Sequence[str]) -> list[str]:
    """``argv`` with each key that follows a list option's first one given its own flag:
    ``apply PLAN --only a b`` and ``apply --only a b PLAN`` → ``--only a --only b``.

    Which bare word is PLAN: the one that follows no list option's keys (``apply -j 2
    PLAN --only a b``), else the last word after a list option's keys (``apply --only a b
    PLAN``), preferring one that names an existing file, then one ending in .yaml or .yml
    (``--only a PLAN --force b c``).
    Commands with other positionals than one PLAN are left to argparse as they are.
    """
    words = list(argv)
    at = next((i for i, word in enumerate(words) if not word.startswith("-")), None)
    if at is None or words[at] not in commands:
        return words
    parser = commands[words[at]]
    if [a.nargs for a in parser._actions if not a.option_strings] != [None]:
        return words
    items = _classify(words[at + 1 :], {n: a for a in parser._actions for n in a.option_strings})
    plan = _plan_word(items)
    spread = words[: at + 1]
    for n, (word, flag) in enumerate(items):
        spread += [flag, word] if flag and n != plan else [word]
    return spread


#: A word of the command line, and for a bare word that comes after a list option's keys,
#: that option's flag: the word is one more key, unless it is PLAN. The words that are an
#: option or its value have ``_VALUE`` as their flag.
_Item = tuple[str, str | None]
_VALUE = ""


def _classify(words: list[str], actions: dict[str, argparse.Action]) -> list[_Item]:
    """Each word, with the list option whose keys a bare word may continue."""
    items: list[_Item] = []
    continued: str | None = None
    rest = iter(words)
    for word in rest:
        if word == "--":
            return [*items, (word, _VALUE), *((w, _VALUE) for w in rest)]
        if not word.startswith("-") or word == "-":
            items.append((word, continued))
            continue
        name = word.split("=", 1)[0]
        action = _option(actions, name)
        items.append((word, _VALUE))
        continued = name if action is not None and action.type is key_list else None
        if action is not None and action.nargs != 0 and "=" not in word:
            value = next(rest, None)
            if value is not None:
                items.append((value, _VALUE))
    return items


def _plan_word(items: list[_Item]) -> int | None:
    """The index of the word that is PLAN among those after a list option's keys; None
    when PLAN follows no list option (then each of those words is a key)."""
    if any(flag is None for _, flag in items):
        return None
    ends = [
        n
        for n, (_, flag) in enumerate(items)
        if flag and (n + 1 == len(items) or items[n + 1][1] != flag)
    ]
    named = [n for n in ends if Path(items[n][0]).is_file()]
    named = named or [n for n in ends if items[n][0].endswith((".yaml", ".yml"))]
    return named[0] if named else ends[-1] if ends else None


def _option(actions: dict[str, argparse.Action], name: str) -> argparse.Action | None:
    """The action of option ``name``, or of the one long option it abbreviates."""
    if name in actions:
        return actions[name]
    matches = {id(a): a for flag, a in actions.items() if flag.startswith(name)}
    return next(iter(matches.values())) if name.startswith("--") and len(matches) == 1 else None
