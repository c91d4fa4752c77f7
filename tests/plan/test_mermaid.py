"""The Mermaid drawing renders whatever the plan: large groups collapse into counted nodes,
no chart has 500 edges, nodes are coloured by status, and hostile labels are escaped."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from planrun.cli import main
from planrun.core.mermaid import MAX_EDGES, MAX_TEXT
from tests.plan.helpers import compile_text

EDGE = re.compile(r"^  (\w+) (-->|-\.->) (\w+)$")
LABEL = re.compile(r'^  (\w+)\[{1,2}"([^"]*)"\]{1,2}$')


def edges(chart: str) -> list[tuple[str, str]]:
    return [(m[1], m[3]) for line in chart.splitlines() if (m := EDGE.match(line))]


def labels(chart: str) -> dict[str, str]:
    """Node id → its label as Mermaid shows it (entity codes decoded)."""
    found = {m[1]: m[2] for line in chart.splitlines() if (m := LABEL.match(line))}
    return {
        ident: re.sub(r"#(\d+);", lambda c: chr(int(c[1])), text) for ident, text in found.items()
    }


def fan_out_plan(tmp_path: Path, count: int) -> Path:
    items = json.dumps([f"doc-{n}" for n in range(count)])
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "version: 1\nname: docs\ntasks:\n"
        "  prepare: {run: [echo]}\n"
        f"  document: {{needs: [prepare], for_each: {{items: {items}}}, run: [echo]}}\n"
        "  check: {needs: [document], for_each: {same_as: document}, run: [echo]}\n"
        "  publish: {needs: [check], run: [echo]}\n"
    )
    return plan


def test_a_300_item_fan_out_collapses_into_counted_nodes_under_500_edges(
    tmp_path: Path,
) -> None:
    """Drawn in full, 2 × 300 items and their same_as links would be 1,201 edges."""
    plan = compile_text(fan_out_plan(tmp_path, 300).read_text(), tmp_path)
    assert len(plan.graph.edges()) > 1_200
    statuses = {key: "done" for key in plan.tasks}
    statuses |= {f"document[doc-{n}]": "failed" for n in range(20)}
    statuses |= {f"check[doc-{n}]": "skipped" for n in range(20)}
    chart = plan.graph.to_mermaid(statuses)
    shown = labels(chart)
    assert sorted(shown.values()) == [
        "check ×300: 280 done, 20 skipped",
        "document ×300: 280 done, 20 failed",
        "prepare: done",
        "publish: done",
    ]
    ids = {text.split(" ")[0].rstrip(":"): ident for ident, text in shown.items()}
    assert sorted(edges(chart)) == sorted(
        [
            (ids["prepare"], ids["document"]),
            (ids["document"], ids["check"]),
            (ids["check"], ids["publish"]),
        ]
    )
    assert f"  class {ids['document']} failed" in chart.splitlines()
    assert f"  class {ids['check']} skipped" in chart.splitlines()
    assert any(line.startswith("  classDef failed fill:") for line in chart.splitlines())


def test_planrun_graph_draws_a_fan_out_of_600_items_as_one_node(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["graph", str(fan_out_plan(tmp_path, 600)), "--format", "mermaid"], out) == 0
    chart = out.getvalue()
    assert sorted(labels(chart).values()) == ["check ×600", "document ×600", "prepare", "publish"]
    assert len(edges(chart)) == 3


def test_a_plan_that_cannot_collapse_is_cut_short_and_says_what_it_left_out(
    tmp_path: Path,
) -> None:
    """700 tasks in a chain: no group to collapse, so the chart stops at the limits."""
    tasks = "".join(f"  t{n}: {{needs: [t{n - 1}], run: [echo]}}\n" for n in range(1, 700))
    plan = compile_text(f"version: 1\ntasks:\n  t0: {{run: [echo]}}\n{tasks}", tmp_path)
    chart = plan.graph.to_mermaid({key: "pending" for key in plan.tasks})
    assert len(edges(chart)) <= MAX_EDGES
    assert len(chart) <= MAX_TEXT
    more = [text for text in labels(chart).values() if text.startswith("…")]
    drawn = len(labels(chart)) - 1
    assert more == [f"… {700 - drawn} more tasks not drawn: {700 - drawn} pending"]


def test_many_mid_sized_groups_collapse_too_when_the_chart_would_be_too_big(
    tmp_path: Path,
) -> None:
    """60 fan-outs of 10 (each under the collapse size) would be 600 dashed edges."""
    tasks = "".join(
        f"  g{n}: {{for_each: {{items: [a,b,c,d,e,f,g,h,i,j]}}, run: [echo]}}\n" for n in range(60)
    )
    plan = compile_text(f"version: 1\ntasks:\n{tasks}", tmp_path)
    chart = plan.graph.to_mermaid()
    assert sorted(labels(chart).values()) == sorted(f"g{n} ×10" for n in range(60))
    assert edges(chart) == []


HOSTILE = [
    "x#y;z",
    'say "hi"',
    "<b>bold</b>",
    "a&amp;b",
    "```",
    "%%{init: {}}%%",
    "end",
    "x --> y",
    "back\\slash|pipe",
]


def test_hostile_labels_are_escaped_and_read_back_as_written(tmp_path: Path) -> None:
    items = json.dumps(HOSTILE)
    plan = compile_text(
        f"version: 1\ntasks:\n  doc: {{for_each: {{items: {items}}}, run: [echo]}}\n", tmp_path
    )
    chart = plan.graph.to_mermaid({key: "done" for key in plan.tasks})
    quoted = [line.split('"')[1] for line in chart.splitlines() if '"' in line]
    assert len(quoted) == len(HOSTILE) + 1
    for text in quoted:  # nothing Mermaid, Markdown or HTML reads as syntax
        assert re.fullmatch(r"(?:[\w .,:/()\[\]+=@'!?*×…-]|#\d+;)*", text), text
    assert sorted(labels(chart).values()) == sorted(
        [f"doc[{text}]: done" for text in HOSTILE] + ["doc: done"]
    )


def test_labels_are_cut_to_a_readable_length(tmp_path: Path) -> None:
    long = "v" * 150
    plan = compile_text(
        f"version: 1\ntasks:\n  doc: {{for_each: {{items: [{long}]}}, run: [echo]}}\n", tmp_path
    )
    (text,) = [t for t in labels(plan.graph.to_mermaid()).values() if t.startswith("doc[")]
    assert len(text) == 80
    assert text.endswith("…")
