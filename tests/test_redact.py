"""Redactor: one-shot and streamed redaction of secrets and their encodings (anchors §15)."""

from __future__ import annotations

import base64
import itertools
import json
import time
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planrun.core.redact import REPLACEMENT, Redactor, secret_forms


def stream(redactor: Redactor, chunks: list[str]) -> str:
    return "".join(redactor.feed(chunk) for chunk in chunks) + redactor.flush()


def splits(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(max(cut, 0), len(text)) for cut in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# --- one-shot -----------------------------------------------------------------------------


def test_masks_every_occurrence() -> None:
    redactor = Redactor(["hunter2"])
    assert redactor.redact("pw=hunter2 again hunter2.") == "pw=*** again ***."


def test_short_and_empty_values_are_ignored() -> None:
    redactor = Redactor(["", "a", "42", "abc"])
    assert redactor.redact("a 42 abc") == "a 42 ***"
    assert not Redactor(["", "xy"]).active
    assert Redactor(["", "xy"]).redact("xy") == "xy"


def test_longest_secret_wins_when_one_is_a_prefix_of_another() -> None:
    redactor = Redactor(["token", "token-extended"])
    assert redactor.redact("token-extended token-") == "*** ***-"


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: quote(s, safe=""),
        lambda s: quote_plus(s, safe=""),
        lambda s: json.dumps(s)[1:-1],
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
        lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    ],
    ids=["quote", "quote_plus", "json", "base64", "base64-unpadded", "base64-urlsafe"],
)
def test_encoded_forms_are_masked(encode: object) -> None:
    secret = 'p@ss w/rd+"é"?~~'
    assert callable(encode)
    encoded = encode(secret)
    out = Redactor([secret]).redact(f"<{encoded}>")
    assert encoded not in out
    assert REPLACEMENT in out


@pytest.mark.parametrize("prefix", ["u:", "us:", "use:"])
def test_base64_inside_a_larger_blob_is_masked(prefix: str) -> None:
    secret = "correct-horse-battery"
    blob = base64.b64encode(f"{prefix}{secret}".encode()).decode()
    out = Redactor([secret]).redact(f"Authorization: Basic {blob}")
    assert REPLACEMENT in out
    # what is left of the blob: the characters that encode the prefix, and at most one
    # character (plus padding) that mixes the secret's last bits with what follows
    left = out.removeprefix("Authorization: Basic ").replace(REPLACEMENT, "")
    assert len(left) <= (8 * len(prefix) + 5) // 6 + 3


def test_pty_newline_translation_is_masked() -> None:
    secret = "line-one\nline-two"
    assert Redactor([secret]).redact("x line-one\r\nline-two y") == "x *** y"


def test_deeply_nested_prefixes_fall_back_to_a_flat_alternation() -> None:
    secrets = ["q" * n for n in range(3, 300)]  # too deep a trie for the regex compiler
    assert Redactor(secrets).redact("x" + "q" * 302 + "x") == "x******x"  # 299 + 3


def test_forms_of_a_short_secret_do_not_include_tiny_base64_pieces() -> None:
    assert all(len(form) >= 3 for form in secret_forms("abc"))
    assert secret_forms("ab") == set()


# --- streaming ----------------------------------------------------------------------------


def test_secret_split_across_two_chunks_is_caught() -> None:
    redactor = Redactor(["s3cr3t-value"])
    first = redactor.feed("before s3cr3t")
    assert first == "before "  # the possible start of the secret is held back
    assert redactor.feed("-value after") == "*** after"
    assert redactor.flush() == ""


def test_held_back_text_that_is_not_a_secret_is_released() -> None:
    redactor = Redactor(["s3cr3t-value"])
    assert redactor.feed("a s3cr") == "a "
    assert redactor.feed("ew") == "s3crew"
    assert redactor.feed("s3") == ""
    assert redactor.flush() == "s3"


def test_every_two_chunk_split_and_bytewise_delivery() -> None:
    secrets = ["abcabd", "abc", "bcab", "zzz\nq"]
    text = "xabcabdyabcabcabzzz\nqzzz\r\nqabcab"
    expected = Redactor(secrets).redact(text)
    for cut in range(len(text) + 1):
        assert stream(Redactor(secrets), [text[:cut], text[cut:]]) == expected, cut
    assert stream(Redactor(secrets), list(text)) == expected


def test_without_secrets_text_passes_through_unchanged() -> None:
    redactor = Redactor([])
    assert redactor.feed("anything") == "anything"
    assert redactor.flush() == ""


def test_streaming_is_fast_on_large_input() -> None:
    redactor = Redactor([f"secret-number-{i:03d}" for i in range(50)])
    chunk = ("ordinary log text without any secret in it 0123456789\n" * 1200)[:65536]
    start = time.perf_counter()
    out = [redactor.feed(chunk) for _ in range(160)]  # 10 MiB
    elapsed = time.perf_counter() - start
    assert sum(map(len, out)) + len(redactor.flush()) == 160 * len(chunk)
    assert elapsed < 2.0


def test_holding_back_a_long_secret_is_cheap() -> None:
    secret = "-----BEGIN KEY-----" + "k" * 3000
    redactor = Redactor([secret])
    start = time.perf_counter()
    out = stream(redactor, ["x" * 10 + secret[:i] for i in range(0, 3000, 7)])
    assert secret not in out
    assert time.perf_counter() - start < 2.0


# --- what a reader sees: escape sequences and control characters removed -----------------

SPLIT_SECRET = "sk-live-ABCDEF1234567890"


@pytest.mark.parametrize(
    "hidden",
    [
        "\x1b[1m",
        "\x00",
        "\x1b[0m\x1b[38;5;196m",
        "\x1b]0;title\x07",
        "\x1b]8;;\x1b\\",
        "\x9b1m",
        "\x08",
    ],
    ids=["csi", "nul", "two-csi", "osc-bel", "osc-st", "c1-csi", "backspace"],
)
def test_a_secret_split_by_what_readers_remove_is_masked(hidden: str) -> None:
    text = f"key={SPLIT_SECRET[:10]}{hidden}{SPLIT_SECRET[10:]}!"
    assert Redactor([SPLIT_SECRET]).redact(text) == "key=***!"


def test_the_shown_view_of_the_output_never_holds_the_secret() -> None:
    from planrun.commands.logs import safe_line

    text = f"a {SPLIT_SECRET[:3]}\x1b[1m{SPLIT_SECRET[3:9]}\x00{SPLIT_SECRET[9:]}\x1b[0m b"
    out = Redactor([SPLIT_SECRET]).redact(text)
    assert safe_line(out) == "a *** b"


def test_a_secret_inside_an_escape_sequence_is_masked_as_written() -> None:
    out = Redactor([SPLIT_SECRET]).redact(f"\x1b]0;{SPLIT_SECRET}\x07shown")
    assert out == "\x1b]0;***\x07shown"


def test_escape_sequences_around_a_secret_are_kept() -> None:
    text = f"\x1b[31m{SPLIT_SECRET}\x1b[0m \x1b[1mbold\x00"
    assert Redactor([SPLIT_SECRET]).redact(text) == "\x1b[31m***\x1b[0m \x1b[1mbold\x00"


def test_a_line_end_is_never_hidden() -> None:
    # a reader shows the lines apart: the halves are two lines, nothing to mask
    text = f"{SPLIT_SECRET[:10]}\x1b]0;t\n{SPLIT_SECRET[10:]}"
    assert Redactor([SPLIT_SECRET]).redact(text) == text


def test_a_split_secret_cut_at_every_point_of_a_stream_is_caught() -> None:
    text = f"x {SPLIT_SECRET[:10]}\x1b[1;31m{SPLIT_SECRET[10:15]}\x00{SPLIT_SECRET[15:]} y\x1b["
    expected = Redactor([SPLIT_SECRET]).redact(text)
    assert expected == "x *** y\x1b["
    for cut in range(len(text) + 1):
        assert stream(Redactor([SPLIT_SECRET]), [text[:cut], text[cut:]]) == expected, cut
    assert stream(Redactor([SPLIT_SECRET]), list(text)) == expected


def test_an_unfinished_sequence_after_a_possible_secret_is_held_back() -> None:
    redactor = Redactor([SPLIT_SECRET])
    assert redactor.feed(f"ok {SPLIT_SECRET[:10]}\x1b[") == "ok "
    assert redactor.feed("1m") == ""
    assert redactor.feed(f"{SPLIT_SECRET[10:]}.") == "***."
    assert redactor.feed("colour \x1b[3") == "colour "  # nothing before it: only the sequence
    assert redactor.feed("1mred") == "\x1b[31mred"
    assert redactor.flush() == ""


def test_what_is_held_back_stays_bounded() -> None:
    redactor = Redactor([SPLIT_SECRET])
    out = redactor.feed(SPLIT_SECRET[:5])
    for _ in range(2000):
        out += redactor.feed("\x1b[1m" * 10)
    assert len(redactor._held) + len(redactor._shown_held) <= len(SPLIT_SECRET) + 8192
    assert out  # released once the escape sequences outgrew the bound


def test_streaming_coloured_output_is_fast() -> None:
    redactor = Redactor([f"secret-number-{i:03d}" for i in range(50)])
    line = "\x1b[32mok\x1b[0m ordinary \x1b[1mlog\x1b[0m text, no secret 0123456789\n"
    chunk = (line * 1200)[:65536]
    start = time.perf_counter()
    out = [redactor.feed(chunk) for _ in range(160)]  # 10 MiB
    elapsed = time.perf_counter() - start
    assert sum(map(len, out)) + len(redactor.flush()) == 160 * len(chunk)
    assert elapsed < 3.0


# --- properties ---------------------------------------------------------------------------

ALPHABET = "abc01\n%+/= "
secret_st = st.text(alphabet=ALPHABET, min_size=3, max_size=8)


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[list[str], str, list[int]]:
    secrets = draw(st.lists(secret_st, min_size=1, max_size=4))
    fillers = st.text(alphabet=ALPHABET, max_size=6)
    parts = draw(st.lists(st.one_of(st.sampled_from(secrets), fillers), max_size=12))
    text = "".join(parts)
    cuts = draw(st.lists(st.integers(0, max(len(text), 0)), max_size=8))
    return secrets, text, cuts


@settings(max_examples=200, deadline=None)
@given(texts_with_secrets())
def test_any_chunking_equals_one_shot_and_leaks_nothing(
    case: tuple[list[str], str, list[int]],
) -> None:
    secrets, text, cuts = case
    one_shot = Redactor(secrets).redact(text)
    streamed = stream(Redactor(secrets), splits(text, cuts))
    assert streamed == one_shot
    for secret in secrets:
        assert secret not in streamed


def reference_redact(secrets: list[str], text: str) -> str:
    """Leftmost, then longest form first, scanning on after each match: the contract."""
    forms = sorted({f for s in secrets for f in secret_forms(s)}, key=len, reverse=True)
    out, i = [], 0
    while i < len(text):
        form = next((f for f in forms if text.startswith(f, i)), None)
        if form is None:
            out.append(text[i])
            i += 1
        else:
            out.append(REPLACEMENT)
            i += len(form)
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(texts_with_secrets())
def test_one_shot_matches_the_reference(case: tuple[list[str], str, list[int]]) -> None:
    secrets, text, _ = case
    assert Redactor(secrets).redact(text) == reference_redact(secrets, text)


@settings(max_examples=100, deadline=None)
@given(texts_with_secrets())
def test_bytewise_delivery_equals_one_shot(case: tuple[list[str], str, list[int]]) -> None:
    secrets, text, _ = case
    assert stream(Redactor(secrets), list(text)) == Redactor(secrets).redact(text)


HIDDEN = ["\x1b[1m", "\x00", "\x1b]0;t\x07", "\x1b[", "\x1b", "\x85", "\x08"]


@st.composite
def texts_with_hidden_parts(draw: st.DrawFn) -> tuple[list[str], str, list[int]]:
    """Secrets and filler interleaved with escape sequences and controls (some unfinished)."""
    secrets = draw(st.lists(secret_st, min_size=1, max_size=3))
    pieces = st.one_of(
        st.sampled_from(secrets), st.text(alphabet=ALPHABET, max_size=4), st.sampled_from(HIDDEN)
    )
    parts = draw(st.lists(pieces, max_size=14))
    cut_secret = draw(st.lists(st.tuples(st.sampled_from(secrets), st.sampled_from(HIDDEN))))
    for secret, hidden in cut_secret[:2]:
        half = draw(st.integers(1, len(secret) - 1))
        parts.insert(draw(st.integers(0, len(parts))), secret[:half] + hidden + secret[half:])
    text = "".join(parts)
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=8))
    return secrets, text, cuts


@settings(max_examples=300, deadline=None)
@given(texts_with_hidden_parts())
def test_hidden_parts_any_chunking_equals_one_shot_and_no_view_leaks(
    case: tuple[list[str], str, list[int]],
) -> None:
    from planrun.commands.logs import safe_line

    secrets, text, cuts = case
    one_shot = Redactor(secrets).redact(text)
    assert stream(Redactor(secrets), splits(text, cuts)) == one_shot
    assert stream(Redactor(secrets), list(text)) == one_shot
    shown = "\n".join(safe_line(line) for line in one_shot.split("\n"))
    for secret in secrets:
        assert secret not in one_shot
        if "\n" not in secret:  # (a reader shows a secret's lines apart)
            assert secret not in shown
