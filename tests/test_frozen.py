"""planrun.core.frozen: records frozen for the type checker, dataclasses at run time."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from planrun.core.frozen import frozen


@frozen
class Point:
    x: int
    y: int = 0


@frozen(kw_only=True, slots=True, order=True)
class Named:
    name: str
    size: int = 1


def test_a_record_is_a_dataclass_with_value_equality_and_hash() -> None:
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y"]
    assert Point(1, 2) == Point(1, 2) != Point(2, 1)
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2  # usable in sets and as keys
    assert dataclasses.replace(Point(1, 2), y=5) == Point(1, 5)
    assert dataclasses.asdict(Point(1, 2)) == {"x": 1, "y": 2}
    assert repr(Point(1)) == "Point(x=1, y=0)"


def test_options_reach_the_dataclass() -> None:
    with pytest.raises(TypeError):
        Named("positional")  # type: ignore[call-arg]
    assert not hasattr(Named(name="a"), "__dict__")  # slots
    assert sorted([Named(name="b"), Named(name="a", size=2)])[0].name == "a"  # order
    assert pickle.loads(pickle.dumps(Named(name="a", size=3))) == Named(name="a", size=3)
