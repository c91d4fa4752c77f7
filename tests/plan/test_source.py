"""YAML text → data with locations (planrun.plan.source): pure, no files."""

from __future__ import annotations

import math
import time

from planrun.errors import Location, PlanError
from planrun.plan.source import core_value, is_lossy_float, parse


def _data(text: str) -> object:
    return parse(text, "p.yaml").data


def _error(text: str | bytes) -> str:
    """What parsing ``text`` reports: raised when no document can be built, else kept
    with the document (``problems``, and ``unusable`` for values YAML refused)."""
    try:
        source = parse(text, "p.yaml")
    except PlanError as error:
        return str(error)
    refused = [problem for _, _, problem in source.unusable]
    return str(PlanError([*source.problems, *refused]))


CORE_SCALARS = [
    ("no", "no"),  # YAML 1.1 booleans are text in 1.2
    ("yes", "yes"),
    ("on", "on"),
    ("true", True),
    ("False", False),
    ("~", None),
    ("null", None),
    ("", None),
    ("12", 12),
    ("-3", -3),
    ("0o17", 15),
    ("0x1F", 31),
    ("1_000", "1_000"),
    ("1.5", 1.5),
    ("1e3", 1000.0),
    (".inf", math.inf),
    ("-.inf", -math.inf),
    ("2026-11-21", "2026-11-21"),  # no timestamps: text
    ("=", "="),
    ("1h30m", "1h30m"),
    ("3.10", 3.1),
]


def test_plain_scalars_follow_the_yaml_1_2_core_schema() -> None:
    for text, value in CORE_SCALARS:
        assert core_value(text) == value, text
        assert _data(f"k: {text}\n") == {"k": value}, text


def test_nan_is_a_float() -> None:
    assert math.isnan(core_value(".nan"))


def test_quoted_and_block_scalars_are_always_text() -> None:
    data = _data("a: '3'\nb: \"true\"\nc: |\n  12\nd: >\n  null\n")
    assert data == {"a": "3", "b": "true", "c": "12\n", "d": "null\n"}


def test_keys_are_the_text_as_written() -> None:
    assert _data("1: a\ntrue: b\nnull: c\n0x10: d\n") == {
        "1": "a",
        "true": "b",
        "null": "c",
        "0x10": "d",
    }


def test_standard_explicit_tags_are_honoured_and_checked() -> None:
    assert _data("a: !!str 5\nb: !!float 3\nc: !!int 7\n") == {"a": "5", "b": 3.0, "c": 7}
    assert _error("a: !!int seven\n") == "p.yaml:1:4: 'seven' is not a valid !!int"


def test_anchors_aliases_and_merge_keys() -> None:
    data = _data(
        "base: &base {timeout: 5m, priority: 1}\n"
        "extra: &extra {priority: 9, tags: [x]}\n"
        "task:\n"
        "  <<: [*base, *extra]\n"
        "  timeout: 10m\n"
        "copy: *base\n"
    )
    assert isinstance(data, dict)
    # written keys win over merged ones; among merged mappings the first wins
    assert data["task"] == {"timeout": "10m", "priority": 1, "tags": ["x"]}
    assert data["copy"] == {"timeout": "5m", "priority": 1}


def test_duplicate_keys_are_errors_but_overriding_a_merged_key_is_not() -> None:
    assert _data("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n") == {"a": {"x": 1}, "b": {"x": 2}}
    source = parse("a: 1\nb: 2\na: 3\n", "p.yaml")  # kept with the document: validation
    assert source.data == {"a": 1, "b": 2}  # reports its own problems in the same pass
    assert [str(d) for d in source.problems] == [
        "p.yaml:3:1: duplicate key 'a' (first defined on line 1)"
    ]
    both = _error("a: 1\na: 2\nb: !!int x\n").splitlines()  # a refused value: kept too
    assert both == [
        "p.yaml:2:1: duplicate key 'a' (first defined on line 1)",
        "p.yaml:3:4: 'x' is not a valid !!int",
    ]


def test_a_nul_character_in_any_text_or_key_is_an_error_at_its_scalar() -> None:
    text = (
        'a: "x\\0y"\n'
        'b: [ok, "\\x00"]\n'
        'c: {"k\\u0000": v, d: !!str "\\U00000000"}\n'
        'e: "\\\\0 is a backslash and a zero"\n'
    )
    assert _error(text).splitlines() == [
        "p.yaml:1:4: this text contains a NUL character (\\0), which cannot be passed to a "
        "process; remove it",
        "p.yaml:2:9: this text contains a NUL character (\\0), which cannot be passed to a "
        "process; remove it",
        "p.yaml:3:5: this key contains a NUL character (\\0), which cannot be used in a name; "
        "remove it",
        "p.yaml:3:22: this text contains a NUL character (\\0), which cannot be passed to a "
        "process; remove it",
    ]
    assert _data('e: "\\\\0"\n') == {"e": "\\0"}


def test_locate_finds_values_keys_and_the_nearest_existing_place() -> None:
    source = parse("tasks:\n  build:\n    needs: [a, b]\n", "p.yaml")
    assert source.locate(("tasks", "build", "needs", 1)) == Location("p.yaml", 3, 16)
    assert source.locate(("tasks", "build"), key=True) == Location("p.yaml", 2, 3)
    assert source.locate(("tasks", "build", "missing")) == Location("p.yaml", 3, 5)
    assert source.locate(("tasks", "build", "needs", 7)) == Location("p.yaml", 3, 12)


def test_locate_sees_through_merge_keys() -> None:
    source = parse("d: &d {timeout: 5m}\nt:\n  <<: *d\n", "p.yaml")
    assert source.locate(("t", "timeout")) == Location("p.yaml", 1, 17)


def test_columns_count_characters_not_bytes() -> None:
    source = parse("a: héllo wörld\nb: [ééé, x]\n", "p.yaml")
    assert source.locate(("b", 1)) == Location("p.yaml", 2, 10)  # 13 if bytes were counted


def test_a_literal_block_maps_template_lines_to_file_lines() -> None:
    source = parse("a:\n  text: |\n    one\n      two\n    three\n  flat: x\n", "p.yaml")
    assert source.locate_line(("a", "text"), 2) == Location("p.yaml", 4, 7)
    assert source.locate_line(("a", "flat"), 1) == Location("p.yaml", 6, 9)
    assert source.locate_line(("a", "flat"), 2) is None


def test_raw_text_keeps_what_was_written() -> None:
    source = parse("v: [3.10, '3.10', 3.1]\n", "p.yaml")
    assert source.data == {"v": [3.1, "3.10", 3.1]}
    assert [source.raw_text(("v", i)) for i in range(3)] == ["3.10", "3.10", "3.1"]
    assert source.raw_text(("v",)) is None


def test_lossy_floats() -> None:
    cases = {"3.10": True, "-2.50": True, "3.1": False, "3.0": False, "10.0": False, "7": False}
    assert {text: is_lossy_float(text) for text in cases} == cases


def test_a_byte_order_mark_is_accepted() -> None:
    assert parse("\ufeffa: 1\n".encode(), "p.yaml").data == {"a": 1}


def test_bad_utf8_is_located_at_its_byte() -> None:
    assert _error(b"a: 1\nb: x\xffy\n") == (
        "p.yaml:2:5: the file is not UTF-8 text (byte 0xff cannot start or continue a "
        "character); save it as UTF-8"
    )


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    start = time.perf_counter()
    message = _error("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2
    assert "(an alias bomb?)" in message


def test_reasonable_reuse_of_anchors_is_fine() -> None:
    head = "d: &d {a: 1, b: 2, c: 3, e: [1, 2, 3, 4, 5, 6, 7, 8]}\n"
    body = "".join(f"t{i}: {{<<: *d, n: {i}}}\n" for i in range(2000))
    data = _data(head + body)
    assert isinstance(data, dict)
    assert data["t1999"]["e"] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_recursion_is_an_error_not_a_hang() -> None:
    assert "recursive YAML" in _error("a: &a [1, *a]\n")
    assert "merges the mapping that contains it" in _error("a: &a\n  <<: *a\n  b: 1\n")


def test_nesting_is_bounded() -> None:
    assert "nests deeper than 64 levels" in _error("a: " + "[" * 80 + "]" * 80 + "\n")


def test_empty_documents() -> None:
    for text in ["", "   \n", "# only a comment\n", "---\n"]:
        assert _error(text) == (
            "p.yaml:1:1: the plan is empty; start with `version: 1` and `tasks:`"
        ), text
