"""Waves (planrun.core.waves): which repository is in which wave (pure)."""

from __future__ import annotations

from planrun.core.waves import halt_reason, wave_numbers


def test_waves_are_the_sizes_in_order_then_the_rest() -> None:
    names = [f"r{i}" for i in range(7)]
    assert wave_numbers(names, [2, 3]) == {
        "r0": 1,
        "r1": 1,
        "r2": 2,
        "r3": 2,
        "r4": 2,
        "r5": 3,
        "r6": 3,
    }
    assert set(wave_numbers(names, [10]).values()) == {1}
    assert wave_numbers([], [1]) == {}
    assert halt_reason(2, 1, 4) == "canary wave 2 failed: 1 of 4 repositories failed"
