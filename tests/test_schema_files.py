"""The generated files are fresh, every plan field is described, the docs name the real
``item`` variables, the wheel ships the schemas and ``planrun init`` points at one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from planrun.cli import main
from planrun.plan.load import load_plan
from planrun.plandoc import plan_reference
from planrun.schemas import NAMES, field_docs, packaged, schema_for, schema_text

ROOT = Path(__file__).resolve().parent.parent
AGAIN = "run `python -m planrun.schemas` to write the generated files again"


@pytest.mark.parametrize("which", NAMES)
def test_the_packaged_schema_is_fresh_and_schemas_links_to_it(which: str) -> None:
    shipped = ROOT / "planrun" / "data" / f"{which}.schema.json"
    assert shipped.read_text(encoding="utf-8") == schema_text(which), AGAIN
    assert (ROOT / "schemas" / f"{which}.schema.json").resolve() == shipped
    assert packaged(which) == shipped


def test_docs_plan_md_is_fresh() -> None:
    assert (ROOT / "docs" / "plan.md").read_text(encoding="utf-8") == plan_reference(), AGAIN


def _properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            found.append((f"{path}.{name}", prop))
        for key, value in node.items():
            found += _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for value in node:
            found += _properties(value, path)
    return found


def test_every_property_of_the_plan_schema_has_a_description() -> None:
    properties = _properties(schema_for("plan"))
    assert len(properties) >= 135
    assert [path for path, prop in properties if not prop.get("description")] == []


def _expanded(tmp_path: Path, for_each: str) -> list[dict[str, Any]]:
    (tmp_path / "src").mkdir(exist_ok=True)
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / "src" / name).write_text("")
    (tmp_path / "hosts.txt").write_text("# hosts\nalpha\nbeta\n")
    text = f"version: 1\ntasks:\n  t: {{for_each: {for_each}, run: [echo]}}\n"
    plan = load_plan(tmp_path / "plan.yaml", text)
    return [dict(t.item) for t in plan.tasks.values() if t.kind == "work"]


FORMS = {
    "items": "{items: [one, 2]}",
    "glob": '{glob: "src/*.py"}',
    "matrix": "{matrix: {python: ['3.12'], os: [linux]}}",
    "lines": "{lines: hosts.txt}",
    "batch": '{glob: "src/*.py", batch: 2}',
}


@pytest.mark.parametrize("form", FORMS)
def test_the_docs_name_every_item_variable_of_each_for_each_form(form: str, tmp_path: Path) -> None:
    from planrun.plan.model import ForEach

    doc = field_docs(ForEach)[form] + " " + (ForEach.__doc__ or "")
    items = _expanded(tmp_path, FORMS[form])
    axes = {"python", "os"} if form == "matrix" else set()
    named = set(re.findall(r"`item\.(\w+)`", doc))
    assert {k for item in items for k in item} - axes <= named, doc
    assert all(isinstance(item["id"], str) for item in items)  # batch ids too: "0", "1"


def test_planrun_init_points_editors_at_the_installed_schema(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    assert main(["init", str(plan)], out=sys.stderr) == 0
    first = plan.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema=file://"
    assert first.startswith(prefix), first
    target = Path(unquote(urlparse(first.split("=", 1)[1]).path))
    assert target.read_text(encoding="utf-8") == schema_text("plan")
    assert len(load_plan(plan).work) == 3


def test_the_wheel_ships_every_schema(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "planrun", source / "planrun", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("planrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"planrun/data/{which}.schema.json" for which in NAMES} <= names
    assert "planrun/py.typed" in names
