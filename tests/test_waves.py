"""Waves (planrun.core.waves): which repository is in which wave, when a wave may start,
and a canary that halts the rest (pure: a plan of listed repositories compiles without
cloning, and the run state is driven by hand)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from planrun.core.outcomes import Status
from planrun.core.runstate import Caps, RunState
from planrun.core.waves import Waves, halt_reason, wave_numbers
from planrun.plan.load import load_plan


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


def _state(tmp_path: Path, halt_above: str) -> RunState:
    text = f"""\
version: 1
name: w
settings: {{secrets: [T]}}
changesets: {{waves: [1], halt_above: {halt_above}}}
projects:
  org:
    repositories: {{urls: [a/r1.git, a/r2.git, a/r3.git]}}
    changeset: {{token: T}}
tasks:
  FIX: {{project: org, run: ["true"]}}
  IN_REVIEW: {{project: org, needs: [FIX], run: ["true"], review: true}}
"""
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    plan = load_plan(path)  # listed repositories: compiled without cloning
    state = RunState(plan.graph, Caps(total=8), waves=Waves.of(plan))
    state.begin()
    return state


def test_a_wave_starts_after_the_one_before_and_a_failing_canary_halts_the_rest(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path, "0%")
    assert state.take() == ["FIX[a/r1]"]  # wave 1 only
    changes = state.finish("FIX[a/r1]", Status.FAILED, "exit code 1")
    halted = "canary wave 1 failed: 1 of 1 repositories failed"
    assert {c.key: c.reason for c in changes if c.status is Status.CANCELLED} == {
        "FIX[a/r2]": halted,
        "FIX[a/r3]": halted,
        "IN_REVIEW[a/r2]": halted,
        "IN_REVIEW[a/r3]": halted,
    }
    assert state.take() == []


def test_a_wave_waiting_for_review_lets_the_next_one_start(tmp_path: Path) -> None:
    state = _state(tmp_path, "50%")
    assert state.take() == ["FIX[a/r1]"]
    state.finish("FIX[a/r1]", Status.DONE)
    assert state.take() == ["IN_REVIEW[a/r1]"]
    state.release("IN_REVIEW[a/r1]", Status.IN_REVIEW)  # waits for a person
    assert sorted(state.take()) == ["FIX[a/r2]", "FIX[a/r3]"]


def test_a_task_with_its_own_changeset_is_a_wave_member_of_its_own(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "api")], check=True)
    text = """\
version: 1
name: w
settings: {secrets: [T]}
changesets: {waves: [1]}
projects:
  api: {path: api}
tasks:
  A: {project: api, run: ["true"], changeset: {repo: a/api, token: T}}
  B: {project: api, run: ["true"], changeset: {repo: a/api, token: T}}
  C: {project: api, run: ["true"]}
"""
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    plan = load_plan(path)
    state = RunState(plan.graph, Caps(total=8), waves=Waves.of(plan))
    state.begin()
    assert sorted(state.take()) == ["A", "C"]  # B is wave 2; C is in no wave
    state.finish("A", Status.DONE, "")
    assert state.take() == ["B"]
