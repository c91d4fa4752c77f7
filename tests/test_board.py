"""``planrun board`` without a browser: a real board process over a real store, read with
real HTTP requests and event streams; and the pieces (graph, log tail, waiting commands).

The store comes from a real apply of tasks that print hostile text (markup, a
``javascript:`` link, terminal escape sequences) and a secret's value. That apply ran
without the secret in its environment, so its log holds the value as a log written
before the secret was declared would: the board, started with the secret set, must mask
it itself.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from planrun.board import graph
from planrun.board.http import MAX_CONNECTIONS
from planrun.board.logtail import Tail
from planrun.board.render import CSP, MAX_CARDS, Renderer
from planrun.board.snapshot import read_board, task_href
from planrun.core.outcomes import Status
from planrun.core.redact import Redactor
from planrun.state.memory import MemoryStore
from planrun.state.records import AttemptStart, TaskUpdate
from planrun.state.store import RunRow
from tests import boardkit, runs
from tests.gitrepo import make_repos
from tests.runs import write_plan

SECRET = "hunter2-board-secret-value"

EVIL_SH = r"""
printf '%s\n' '<script>window.__pwned=1</script>' '<a href="javascript:window.__pwned=2">x</a>'
printf '\033[31mred\033[0m \033]0;a title\007\033]8;;javascript:alert(1)\033\\link\033]8;;\033\\\n'
printf 'progress 10%%\rprogress 100%%\n'
"""

PLAN = f"""\
version: 1
name: hostile
settings: {{secrets: [BOARD_SECRET]}}
tasks:
  EVIL:
    title: "<script>window.__pwned=3</script> & <b>co</b>"
    run: [sh, evil.sh]
  LEAK:
    title: "deploy with {SECRET}"
    run: [sh, -c, "echo the key is {SECRET}; echo after the key"]
  FAIL:
    needs: [EVIL]
    run: [sh, -c, "echo '<img src=x onerror=alert(1)>'; exit 3"]
  FILES:
    for_each: {{items: [src/a.py, b c]}}
    run: [echo, "{{{{ item }}}}"]
"""


@pytest.fixture(scope="module")
def hostile_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board")
    (folder / "evil.sh").write_text(EVIL_SH)
    plan = write_plan(folder, PLAN)
    done = runs.apply(plan)
    assert done.returncode == 1, done.stderr  # FAIL fails
    return plan


@pytest.fixture(scope="module")
def served(hostile_plan: Path) -> Iterator[boardkit.Board]:
    with boardkit.board(hostile_plan, env={"BOARD_SECRET": SECRET}) as board:
        yield board


def test_the_board_page_shows_every_task_with_text_escaped(served: boardkit.Board) -> None:
    reply = served.get("/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert reply.headers["x-content-type-options"] == "nosniff"
    page = reply.body
    for key, column in (("EVIL", "done"), ("LEAK", "done"), ("FAIL", "failed")):
        assert f'data-key="{key}"' in page.split(f'id="col-{column}"')[1].split("</div>")[0]
    assert "&lt;script&gt;window.__pwned=3&lt;/script&gt; &amp; &lt;b&gt;co&lt;/b&gt;" in page
    assert page.count("<script") == 1  # board.js, nothing else
    assert '<script src="/static/board.js" defer></script>' in page
    assert SECRET not in page
    assert "deploy with ***" in page
    assert "<svg" in page
    assert 'href="/task/EVIL"' in page


def test_a_task_page_and_its_log_stream_show_output_as_text(served: boardkit.Board) -> None:
    page = served.get("/task/EVIL").body
    assert "&lt;script&gt;window.__pwned=3" in page
    assert 'id="log"' in page
    events, raw = boardkit.read_events(
        served.host, served.port, "/task/EVIL/events", lambda ev: boardkit.log_lines(ev)
    )
    assert [name for name, _ in events][:2] == ["page", "log"]
    assert boardkit.log_lines(events) == [
        "<script>window.__pwned=1</script>",  # sent as a JSON string, added as text
        '<a href="javascript:window.__pwned=2">x</a>',
        "red link",  # escape sequences (colours, a title, a hyperlink) removed
        "progress 100%",  # a redrawn line shows its last drawing
    ]
    assert "\x1b" not in raw
    assert "\\u001b" not in raw


def test_a_secret_never_reaches_the_page_or_the_stream(served: boardkit.Board) -> None:
    page = served.get("/task/LEAK").body
    assert SECRET not in page
    events, raw = boardkit.read_events(
        served.host, served.port, "/task/LEAK/events", lambda ev: boardkit.log_lines(ev)
    )
    assert boardkit.log_lines(events) == ["the key is ***", "after the key"]
    assert SECRET not in raw
    board_events, board_raw = boardkit.read_events(
        served.host, served.port, "/events", lambda ev: bool(ev)
    )
    assert board_events[0][0] == "page"
    assert SECRET not in board_raw


def test_a_key_with_a_slash_has_its_page(served: boardkit.Board) -> None:
    assert 'href="/task/FILES%5Bsrc%2Fa.py%5D"' in served.get("/").body
    page = served.get("/task/FILES%5Bsrc%2Fa.py%5D").body
    assert '<span class="key">FILES[src/a.py]</span>' in page
    assert 'data-events="/task/FILES%5Bsrc%2Fa.py%5D/events"' in page
    assert "FILES ×2" in served.get("/").body  # the fan-out is one box of the graph
    events, _ = boardkit.read_events(
        served.host, served.port, "/task/FILES%5Bb%20c%5D/events", boardkit.log_lines
    )
    assert boardkit.log_lines(events) == ["b c"]


def test_a_closed_event_stream_frees_its_connection_at_once(served: boardkit.Board) -> None:
    """More streams opened and closed one after another than the server serves at once
    (64): each is let go when its client closes it, not at the next keep-alive (15 s)."""
    for _ in range(MAX_CONNECTIONS + 6):
        events, _ = boardkit.read_events(served.host, served.port, "/events", bool)
        assert events[0][0] == "page"
    assert served.get("/").status == 200


def test_the_server_is_read_only_and_answers_only_at_loopback(served: boardkit.Board) -> None:
    assert served.get("/", method="POST").status == 405
    assert served.get("/", host_header="rebound.example:80").status == 421
    assert served.get("/", host_header=f"localhost:{served.port}").status == 200
    assert served.get("/", host_header="localhost:9000").status == 200  # through a tunnel
    assert served.get("/", host_header="[::1]:9000").status == 200
    assert served.get("/", host_header="127.0.0.1.rebound.example").status == 421
    assert served.get("/nothing").status == 404
    assert served.get("/static/../render.py").status == 404
    script = served.get("/static/board.js")
    assert script.status == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" in script.body  # only for the server's own escaped fragments
    assert served.get("/task/NOPE").status == 200  # a page that says there is no such task
    assert "No task NOPE" in served.get("/task/NOPE").body


def test_sigterm_stops_the_board_and_a_public_address_is_warned_about(
    hostile_plan: Path,
) -> None:
    port = boardkit.free_port()
    proc = subprocess.Popen(
        [*runs.PLANRUN, "board", str(hostile_plan), "--listen", f"0.0.0.0:{port}"],
        env=runs.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"http://0.0.0.0:{port}/" in proc.stdout.readline()
        assert boardkit.get("127.0.0.1", port, "/", host_header="anything.example").status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        runs.stop(proc)
    assert proc.returncode == 0
    assert "stopped" in out
    assert "not loopback" in err
    assert "no login" in err
    bad = runs.planrun("board", str(hostile_plan), "--listen", "nowhere", cwd=hostile_plan.parent)
    assert bad.returncode == 2
    assert "--listen nowhere: expected HOST:PORT" in bad.stderr


# ---------------------------------------------------------------- the pieces


def test_what_waits_for_a_person_comes_with_the_command_to_continue() -> None:
    store = MemoryStore()
    run = RunRow("r1", "p", "/p/plan.yaml", "0" * 64, "0", "2026-12-06T10:00:00.000000Z", "running")
    store.run_started(run)
    planned = [
        {"key": k, "kind": "work", "title": k, "provider": "claude"} for k in ("A", "B[x y]")
    ]
    store.happened("r1", "run_plan", None, {"format": 1, "tasks": planned})
    for key, status, reason in (
        ("A", Status.NEEDS_INPUT, "asks: \x1b[1m<which>\x1b[0m branch?"),
        ("B[x y]", Status.IN_REVIEW, "review: true"),
    ):
        store.attempt_started("r1", AttemptStart(key, 1, run.started_at, "f", "/nowhere.log"))
        store.task_updated("r1", TaskUpdate(key=key, status=status, reason=reason))
    board = read_board(store, run, None, ("my plan.yaml",))
    assert [(w.key, w.command) for w in board.waiting] == [
        ("A", "planrun answer 'my plan.yaml' A 'YOUR ANSWER'"),
        ("B[x y]", "planrun approve 'my plan.yaml' 'B[x y]'"),
    ]
    html = Renderer(lambda text: text).board(board, "")
    assert "planrun answer &#39;my plan.yaml&#39; A &#39;YOUR ANSWER&#39;" in html
    assert "asks: &lt;which&gt; branch?" in html  # escape sequences dropped, markup escaped
    assert f'href="{task_href("B[x y]")}"' in html
    assert "/task/B%5Bx%20y%5D" in html
    store.close()


def test_the_graph_draws_a_fan_out_as_one_box() -> None:
    items = [f"doc[{n}]" for n in range(50)]
    planned = [
        {"key": "fetch", "kind": "work"},
        *({"key": k, "kind": "work", "parent": "doc", "waits_for": ["fetch"]} for k in items),
        {"key": "doc", "kind": "group", "children": items, "waits_for": items},
        {"key": "ship", "kind": "work", "waits_for": ["doc"]},
    ]
    statuses = {"fetch": "done", **{k: "done" for k in items}, "doc[7]": "failed"}
    drawing = graph.draw(planned, statuses, task_href)
    boxes = {b.key: b for b in drawing.boxes}
    assert list(boxes) == ["fetch", "doc", "ship"]
    assert boxes["doc"].label == "doc ×50"
    assert boxes["doc"].detail == "49 done, 1 failed"
    assert boxes["doc"].status == "failed"  # what needs attention first
    assert boxes["doc"].href is None
    assert boxes["ship"].href == "/task/ship"
    assert [b.x for b in boxes.values()] == sorted({b.x for b in boxes.values()})  # 3 columns
    assert len(drawing.edges) == 2


def test_a_log_tail_gives_whole_lines_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    tail = Tail(log, Redactor([SECRET]).redact)
    assert tail.read() == []  # no log yet
    with log.open("wb") as out:
        out.write(b"one\ntw")
        out.flush()
        assert tail.read() == ["one"]
        out.write(b"o \x1b[1m" + SECRET.encode() + b"\x1b[0m\nthr\xc3")
        out.flush()
        assert tail.read() == ["two ***"]
        out.write(b"\xa9e")
        out.flush()
        assert tail.read() == []
        assert tail.read(final=True) == ["thr\u00e9e"]
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * 100 + b"\n" + b"line\n" * 20_000)
    assert set(Tail(big, str).read()) == {"line"}  # the first read starts at a whole line
    assert os.path.getsize(big) > 64 * 1024


def test_a_board_waits_for_the_first_run_and_shows_a_past_run_by_id(
    tmp_path: Path, hostile_plan: Path
) -> None:
    fresh = write_plan(tmp_path, "version: 1\nname: fresh\ntasks:\n  A: {run: [echo, a]}\n")
    with boardkit.board(fresh) as board:
        page = board.get("/").body
        assert "No run to show yet: no state store at" in page
        assert "(run planrun apply)" in page
    run_id = runs.State(runs.state_of(hostile_plan)).runs("hostile")[-1].id
    with boardkit.board(hostile_plan, "--run", run_id) as board:
        assert f'<span class="run-id">{run_id}</span>' in board.get("/").body
    with boardkit.board(hostile_plan, "--run", "nope") as board:
        assert "no run nope of this plan" in board.get("/").body


def test_neither_import_planrun_nor_apply_loads_the_board(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "version: 1\nname: quiet\ntasks:\n  A: {run: [echo, a]}\n")
    script = (
        "import sys, json\n"
        "from planrun.cli import main\n"
        f"code = main(['apply', {str(plan)!r}, '--progress', 'none'])\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [*runs.PLANRUN[:1], "-c", script],
        cwd=tmp_path,
        env=runs.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 0, done.stderr
    assert "h11" not in modules
    assert not [m for m in modules if m.startswith("planrun.board")]


def test_the_command_shown_for_a_task_in_review_lets_it_go_on(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = make_repos(tmp_path).clone
    plan = write_plan(
        repo,
        "version: 1\nname: held\nprojects: {app: {path: ., base_branch: main}}\n"
        'tasks:\n  R: {project: app, run: [sh, -c, "echo r > r.txt"], review: true}\n',
    )
    assert runs.apply(plan).returncode == 4  # waits for a person
    with boardkit.board(plan) as board:
        page = board.get("/").body
        assert 'id="col-in_review"' in page
        assert "Waiting for you" in page
        shown = re.findall(r'<code class="command">(.*?)</code>', page)
        assert [html.unescape(c) for c in shown] == [f"planrun approve {plan} R"]  # as given
        words = shlex.split(html.unescape(shown[0]))
        approved = runs.planrun(*words[1:], cwd=repo)
        assert approved.returncode == 0, approved.stderr
        done = 'data-key="R" data-status="done"'
        # the first event may be the page as read just before the approval (reads are
        # shared for a moment): wait for the one that shows it
        events, _ = boardkit.read_events(
            board.host, board.port, "/events", lambda ev: any(done in data for _, data in ev)
        )
        assert "Waiting for you" not in events[-1][1]


def test_a_long_column_shows_its_first_cards_and_counts_the_rest() -> None:
    store = MemoryStore()
    start = "2026-12-06T10:00:00.000000Z"
    run = RunRow("r1", "p", "/p/plan.yaml", "0" * 64, "0", start, "running", pid=7, host="h")
    store.run_started(run)
    keys = [f"T{n:04d}" for n in range(MAX_CARDS + 50)]
    planned = [{"key": k, "kind": "work", "title": k} for k in keys]
    store.happened("r1", "run_plan", None, {"format": 1, "tasks": planned})
    live = {"pid": 7, "host": "h"}  # the state lock's holder: the run is live
    html = Renderer(str).board(read_board(store, run, live, ("plan.yaml",)), "")
    queued = html.split('id="col-queued"')[1].split("</div>")[0]
    assert queued.count('class="card') == MAX_CARDS
    assert "… 50 more" in queued
    assert f'<span class="count">{MAX_CARDS + 50}</span>' in queued
    store.close()
