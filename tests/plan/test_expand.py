"""for_each fan-out: items, glob, matrix, lines, batch, same_as; stable ids; KEY[item-id]."""

from __future__ import annotations

from pathlib import Path

from planrun.plan.expand import batched, expanded_key
from planrun.plan.item import Item
from tests.plan.helpers import compile_text, errors_of, write


def _work(text: str, folder: Path) -> dict[str, Item | None]:
    plan = compile_text(text, folder)
    return {key: plan.tasks[key].item for key in plan.work}


def test_scalar_items_are_named_by_their_value(tmp_path: Path) -> None:
    work = _work(
        """
        version: 1
        tasks:
          t:
            for_each: {items: [api, 7, true, null, "a b"]}
            run: [echo, "{{ item }} {{ item.value }} {{ item.index }}"]
        """,
        tmp_path,
    )
    assert list(work) == ["t[7]", "t[a b]", "t[api]", "t[null]", "t[true]"]
    item = work["t[api]"]
    assert item is not None
    assert (str(item), item.id, item["value"], item["index"]) == ("api", "api", "api", 0)
    seven = work["t[7]"]
    assert seven is not None
    assert seven["value"] == 7


def test_mapping_items_are_named_by_id_or_name(tmp_path: Path) -> None:
    work = _work(
        """
        version: 1
        tasks:
          t:
            for_each:
              items: [{id: one, size: 1}, {name: two, size: 2}]
            run: [echo, "{{ item.size }}"]
        """,
        tmp_path,
    )
    assert sorted(work) == ["t[one]", "t[two]"]
    assert work["t[two]"] == {"name": "two", "size": 2, "id": "two", "index": 1}


def test_a_mapping_item_without_a_name_is_located(tmp_path: Path) -> None:
    assert errors_of(
        """
        version: 1
        tasks:
          t:
            for_each:
              items: [{id: one}, {size: 2}]
            run: [echo]
        """,
        tmp_path,
    ) == ["6:26: item 1 is a mapping without an 'id' or 'name' to name it by"]


def test_ids_are_stable_when_items_are_reordered(tmp_path: Path) -> None:
    plan = "version: 1\ntasks:\n  t:\n    for_each: {items: %s}\n    run: [echo, '{{ item }}']\n"
    first = _work(plan % "[a, b, c]", tmp_path)
    second = _work(plan % "[c, a, b, d]", tmp_path)
    assert set(first) < set(second)
    assert all(str(first[key]) == str(second[key]) for key in first)


def test_glob_items_are_sorted_relative_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "src/b.py": "",
            "src/a.py": "",
            "src/pkg/c.py": "",
            "src/notes.txt": "",
            ".git/x.py": "",
            "src/.git/y.py": "",
        },
    )
    work = _work(
        """
        version: 1
        tasks:
          t:
            for_each: {glob: "**/*.py"}
            run: [echo, "{{ item.path }}"]
        """,
        tmp_path,
    )
    assert list(work) == ["t[src/a.py]", "t[src/b.py]", "t[src/pkg/c.py]"]
    item = work["t[src/pkg/c.py]"]
    assert item is not None
    assert {k: item[k] for k in ("path", "name", "stem", "suffix", "dir")} == {
        "path": "src/pkg/c.py",
        "name": "c.py",
        "stem": "c",
        "suffix": ".py",
        "dir": "src/pkg",
    }


def test_a_glob_runs_in_the_tasks_project(tmp_path: Path) -> None:
    write(tmp_path, {"repo/x.py": "", "other.py": ""})
    work = _work(
        """
        version: 1
        projects:
          repo: {path: repo}
        tasks:
          t:
            project: repo
            for_each: {glob: "*.py"}
            run: [echo, "{{ item.path }}"]
        """,
        tmp_path,
    )
    assert list(work) == ["t[x.py]"]


def test_matrix_items_are_every_combination_in_written_order(tmp_path: Path) -> None:
    work = _work(
        """
        version: 1
        tasks:
          t:
            for_each:
              matrix: {python: ["3.11", "3.12"], os: [linux, mac]}
            run: [echo, "{{ item.python }} {{ item.os }}"]
        """,
        tmp_path,
    )
    assert sorted(work) == [
        "t[python=3.11,os=linux]",
        "t[python=3.11,os=mac]",
        "t[python=3.12,os=linux]",
        "t[python=3.12,os=mac]",
    ]
    item = work["t[python=3.12,os=mac]"]
    assert item is not None
    assert (item["python"], item["os"], item["index"]) == ("3.12", "mac", 3)


def test_lines_skip_blanks_and_comments(tmp_path: Path) -> None:
    write(tmp_path, {"hosts.txt": "# hosts\nalpha\n\n  beta  \n#gamma\n"})
    work = _work(
        """
        version: 1
        tasks:
          ping:
            for_each: {lines: hosts.txt}
            run: [echo, "{{ item.line }}"]
        """,
        tmp_path,
    )
    assert list(work) == ["ping[alpha]", "ping[beta]"]


def test_batches_group_consecutive_items_and_are_numbered(tmp_path: Path) -> None:
    write(tmp_path, {f"f{i}.py": "" for i in range(5)})
    work = _work(
        """
        version: 1
        tasks:
          t:
            title: "Fix {{ item.name }}"
            for_each: {glob: "*.py", batch: 2}
            run: {shell: "ls {% for p in item.paths %}{{ p }} {% endfor %}"}
        """,
        tmp_path,
    )
    assert list(work) == ["t[0]", "t[1]", "t[2]"]
    batch = work["t[1]"]
    assert batch is not None
    assert (batch["ids"], batch["paths"], batch["name"]) == (
        ["f2.py", "f3.py"],
        ["f2.py", "f3.py"],
        "f2.py, f3.py",
    )
    assert [str(i) for i in batch["items"]] == ["f2.py", "f3.py"]


def test_batched_and_expanded_key_helpers() -> None:
    items = [Item(str(n), {"id": str(n), "index": n}) for n in range(3)]
    assert [b.id for b in batched(items, 2)] == ["0", "1"]
    assert expanded_key("LOG-1", "src/a.py") == "LOG-1[src/a.py]"


def test_same_as_pairs_each_item_with_its_twin(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          build:
            for_each: {items: [api, web]}
            run: [echo, "build {{ item }}"]
          test:
            for_each: {same_as: build}
            run: [echo, "test {{ item }}"]
        """,
        tmp_path,
    )
    assert plan.graph.waits_for("test[api]") == ["build[api]"]
    assert plan.graph.waits_for("test[web]") == ["build[web]"]
    assert plan.tasks["test[web]"].item == plan.tasks["build[web]"].item


def test_a_dependent_waits_for_every_item_or_for_one(tmp_path: Path) -> None:
    plan = compile_text(
        """
        version: 1
        tasks:
          lint:
            for_each: {items: [a, b]}
            run: [echo, "{{ item }}"]
          all:
            needs: [lint]
            run: [echo]
          one:
            needs: ["lint[b]"]
            run: [echo]
        """,
        tmp_path,
    )
    assert plan.tasks["lint"].kind == "group"
    assert plan.tasks["lint"].children == ("lint[a]", "lint[b]")
    assert plan.graph.waits_for("lint") == ["lint[a]", "lint[b]"]
    assert plan.graph.waits_for("all") == ["lint"]
    assert plan.graph.waits_for("one") == ["lint[b]"]
    assert plan.tasks["lint[a]"].parent == "lint"
    assert plan.tasks["lint[a]"].spec_key == "lint"


def test_fan_out_errors(tmp_path: Path) -> None:
    plan = """
        version: 1
        tasks:
          t:
            for_each: %s
            run: [echo]
        """
    cases = {
        "{items: []}": "5:23: for_each.items is empty: a fan-out needs at least one item",
        "{items: [a, a]}": "5:27: item 1 has the same id 'a' as item 0; item ids must be unique",
        "{items: ['x]']}": (
            "5:24: item id 'x]' cannot name a task: ids are 1-200 characters without brackets "
            "or control characters"
        ),
        "{matrix: {v: []}}": "5:24: matrix axis 'v' is empty",
        "{glob: '/etc/*'}": (
            "5:22: glob '/etc/*' must stay inside the plan's folder (no absolute paths or ..)"
        ),
        "{lines: missing.txt}": (
            "5:23: file 'missing.txt' does not exist (paths are relative to the plan's folder)"
        ),
    }
    for spec, message in cases.items():
        assert errors_of(plan % spec, tmp_path) == [message], spec
