"""Redacting secret values from text, including text that arrives in arbitrary chunks.

A :class:`Redactor` replaces every occurrence of a secret, and of its common encodings, with
``***``. It is built for streams: :meth:`Redactor.feed` returns what is safe to show *now* and
holds back only the shortest tail that could still turn into a secret once more text arrives,
so a secret split across two reads (a PTY hands over whatever the child wrote so far) is still
caught. The concatenation of everything ``feed`` and ``flush`` return is exactly
``redact(whole text)``, whatever the chunking.

Which values are redacted
    Every secret of at least :data:`MIN_SECRET_LENGTH` (3) characters. Values of one or two
    characters are ignored on purpose: masking every ``a`` or ``42`` would shred the log while
    protecting nothing (a two-character value is guessed in a few thousand tries). Secrets are
    not stripped: a value is masked exactly as given.

Which forms are redacted
    The value itself; its URL-quoted forms (``quote`` and ``quote_plus``); its JSON string
    escape; with ``\\r\\n`` in place of each ``\\n`` (what a PTY shows); and its base64 forms
    (standard and URL-safe alphabets, padded or not). Base64 is also matched at each of the
    three byte alignments, so the secret is caught inside a larger encoded blob such as HTTP
    basic auth (``base64("user:" + secret)``): there only the characters that depend on the
    secret alone are masked, which requires at least :data:`MIN_BASE64_CORE` of them.

Matching
    One compiled alternation of every form (factored as a trie): at any position the longest
    form wins, scanning left to right, so when one secret is a prefix of another the longer one is
    masked whole. No occurrence of a secret in the input survives (provided the secrets do not
    themselves contain ``*``, which the replacement could otherwise complete).

What a reader sees
    A log keeps the escape sequences a task printed, and readers remove them (``planrun
    logs``, a terminal, the line view of :mod:`planrun.sessions.output`): a secret printed
    with ``ESC[1m`` or a NUL in the middle would be shown whole. So the text is matched
    twice: as written, and as a reader shows it, without what :func:`visible` removes
    (escape sequences, NULs and other control characters except tab, newline and carriage
    return). A secret found only in the second view is masked from its first to its last
    character as written, the sequences between them included. ``planrun logs`` shows
    lines through :func:`visible` too, so the two can never disagree. Not covered: a
    secret a task deliberately draws apart (split across lines, reversed, placed by cursor
    moves).

Limit
    Text that could be the start of a secret stays held back until the next chunk or
    :meth:`Redactor.flush`; a child that prints the beginning of a secret and then waits will
    not have that beginning shown until it prints more or ends. So does an unfinished
    escape sequence at the end of a chunk (its end decides what a reader shows). At most
    :data:`MAX_HIDDEN` characters of escape sequences inside one secret are bridged across
    chunks; one-shot :meth:`Redactor.redact` has no such bound.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

#: The replacement for every masked value.
REPLACEMENT = "***"
#: Secrets shorter than this are ignored (see the module docstring for why).
MIN_SECRET_LENGTH = 3
#: A base64 form shorter than this is not masked: it would match random encoded text.
MIN_BASE64_CORE = 4
#: Characters of escape sequences inside one secret that a stream still bridges.
MAX_HIDDEN = 4096

#: What a reader removes from a line before showing it: escape sequences (CSI, OSC, the
#: DCS/SOS/PM/APC strings, two-byte ``ESC x``, and their 8-bit C1 forms) and every other
#: control character except tab, newline and carriage return. Never spans a newline.
HIDDEN = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]                          # CSI: colours, cursor moves
    | \x1b\][^\x07\x1b\n]*\x07?                        # OSC (ESC \ ends it, on its own)
    | \x1b[PX^_][^\x1b\n]*                             # DCS, SOS, PM, APC strings
    | \x1b[ -/]*[0-~]                                 # other escapes (charsets, modes)
    | \x9b[0-?]*[ -/]*[@-~]                           # 8-bit CSI
    | [\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c\n]*[\x07\x9c]?  # 8-bit strings
    | [\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]            # other controls: NUL, a lone ESC, C1
    """,
    re.VERBOSE,
)
_HIDDEN_START = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # how each begins
#: The end of a text where a sequence may have begun that the next chunk completes.
_UNFINISHED = re.compile(
    r"""(?:
      \x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b\n]*|[PX^_][^\x1b\n]*|[ -/]*)
    | \x9b[0-?]*[ -/]*
    | [\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c\n]*
    )\Z""",
    re.VERBOSE,
)


def visible(text: str) -> str:
    """``text`` as a reader shows it: without what :data:`HIDDEN` matches."""
    return text if text.isprintable() else HIDDEN.sub("", text)


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters determined by ``raw`` alone, at each of the 3 byte alignments.

    When ``raw`` is encoded after ``k`` other bytes, output character ``i`` covers bits
    ``[6i, 6i + 6)`` of the whole input; it depends on ``raw`` alone when those bits all lie
    in ``raw``, i.e. ``8k <= 6i`` and ``6i + 6 <= 8(k + n)``.
    """
    standalone = base64.b64encode(raw).decode("ascii")
    cores = {standalone, standalone.rstrip("=")}
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + raw).decode("ascii")
        first = (8 * k + 5) // 6
        stop = (8 * (k + len(raw))) // 6
        core = encoded[first:stop]
        if len(core) >= MIN_BASE64_CORE:
            cores.add(core)
    return cores | {core.replace("+", "-").replace("/", "_") for core in cores}


def secret_forms(secret: str) -> set[str]:
    """Every string that is masked on behalf of ``secret`` (empty if it is too short)."""
    if len(secret) < MIN_SECRET_LENGTH:
        return set()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.replace("\n", "\r\n"),
    }
    forms |= _base64_cores(secret.encode("utf-8"))
    return {form for form in forms if form}


_Trie = dict[str, "_Trie"]
_END = ""  # the key that marks the end of a form in a trie node


def _trie_regex(node: _Trie) -> str:
    """Regex for the forms below ``node``, preferring the longest (greedy, then backtrack).

    Chains of single-child nodes become one literal, so nesting grows with branch points,
    not with the length of the forms.
    """
    literal: list[str] = []
    while _END not in node and len(node) == 1:
        [(char, node)] = node.items()
        literal.append(re.escape(char))
    branches = [
        re.escape(char) + _trie_regex(child) for char, child in sorted(node.items()) if char
    ]
    body = ""
    if branches:
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if _END in node:
            body = f"(?:{body})?"
    return "".join(literal) + body


def _compile(ordered: list[str]) -> re.Pattern[str]:
    """One regex matching, at any position, the longest of ``ordered`` (longest first).

    The alternation is factored as a trie (one branch per next character, so the cost per
    position does not grow with the number of forms); a plain alternation is the fallback
    when the trie nests too deep for the regex compiler.
    """
    trie: _Trie = {}
    for form in ordered:
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[_END] = {}
    try:
        return re.compile(_trie_regex(trie))
    except (RecursionError, re.error):
        return re.compile("|".join(re.escape(form) for form in ordered))


class _View:
    """What a reader shows of ``text[:end]`` (:func:`visible`), and where each shown
    character is in ``text``."""

    def __init__(self, text: str, end: int) -> None:
        kept: list[str] = []
        self.starts: list[int] = []  # where each run of kept characters begins in shown
        self.origins: list[int] = []  # ... and in text
        size = done = 0
        for hidden in HIDDEN.finditer(text, 0, end):
            size = self._keep(text, done, hidden.start(), kept, size)
            done = hidden.end()
        self._keep(text, done, end, kept, size)
        self.shown = "".join(kept)

    def _keep(self, text: str, start: int, stop: int, kept: list[str], size: int) -> int:
        if stop > start:
            self.starts.append(size)
            self.origins.append(start)
            kept.append(text[start:stop])
        return size + max(stop - start, 0)

    def origin(self, index: int) -> int:
        """Where shown character ``index`` is in the text."""
        run = bisect_right(self.starts, index) - 1
        return self.origins[run] + index - self.starts[run]


class Redactor:
    """Masks a fixed set of secrets in one-shot text or in a stream of chunks.

    One ``Redactor`` serves one stream (it keeps the held-back tail of that stream); its
    :meth:`redact` may be used at any time for unrelated one-shot text.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms |= secret_forms(secret)
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self._pattern = _compile(ordered) if ordered else None
        # Forms by first character, to find a chunk's tail that may continue into a secret.
        self._by_first: dict[str, list[str]] = {}
        for form in ordered:
            self._by_first.setdefault(form[0], []).append(form)
        self._longest = len(ordered[0]) if ordered else 0
        self._held = ""  # held back by the first pass (as written)
        self._shown_held = ""  # held back by the second (as a reader shows it)

    @property
    def active(self) -> bool:
        """True when there is at least one form to mask."""
        return self._pattern is not None

    def redact(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***`` (stream untouched)."""
        if self._pattern is None:
            return text
        return self._redact_shown(self._pattern.sub(REPLACEMENT, text))

    def feed(self, chunk: str) -> str:
        """Redact the next chunk of the stream; return the part that is safe to emit now.

        The returned text never ends with the start of a secret: that tail is held back and
        completed by the next ``feed`` (or released by :meth:`flush`).
        """
        if self._pattern is None:
            return chunk
        text = self._held + chunk
        hold = self._hold_start(text)
        out: list[str] = []
        done = 0
        for match in self._pattern.finditer(text):
            if match.start() >= hold:
                break
            out.append(text[done : match.start()])
            out.append(REPLACEMENT)
            done = match.end()
        cut = max(hold, done)
        out.append(text[done:cut])
        self._held = text[cut:]
        return self._feed_shown("".join(out))

    def flush(self) -> str:
        """End the stream: return the held-back tail, redacted, and start afresh."""
        held, self._held = self._held, ""
        rest, self._shown_held = self._shown_held + self._pattern_sub(held), ""
        return self._redact_shown(rest)

    def _pattern_sub(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REPLACEMENT, text)

    # --- the second pass: the text as a reader shows it ---------------------------------

    def _redact_shown(self, text: str) -> str:
        """Mask the secrets that only show once what :data:`HIDDEN` matches is removed."""
        if _HIDDEN_START.search(text) is None or not self._found_in(text, len(text)):
            return text  # shown as written, or nothing to mask in what is shown
        return self._mask_shown(text, _View(text, len(text)), len(text))[0]

    def _found_in(self, text: str, end: int) -> bool:
        """Whether the view of ``text[:end]`` holds a match or ends with a possible start
        of one (checked without building the view's positions: most text has neither)."""
        assert self._pattern is not None
        shown = HIDDEN.sub("", text[:end])
        return bool(self._pattern.search(shown)) or self._hold_start(shown) < len(shown)

    def _mask_shown(self, text: str, view: _View, hold: int) -> tuple[str, int]:
        """Mask the view's matches that start before ``hold`` in ``text``; returns the
        masked text up to where the rest begins (``hold``, or after the last match), and
        that index."""
        assert self._pattern is not None
        out: list[str] = []
        done = 0
        for match in self._pattern.finditer(view.shown):
            start = view.origin(match.start())
            if start >= hold:
                break
            out += [text[done:start], REPLACEMENT]
            done = view.origin(match.end() - 1) + 1
        cut = max(hold, done)
        out.append(text[done:cut])
        return "".join(out), cut

    def _feed_shown(self, chunk: str) -> str:
        """The second pass as a stream: what the first pass let through, from which it
        holds back what may still join a secret with the next chunk (a possible start of a
        secret followed by escape sequences, or an unfinished sequence)."""
        text = self._shown_held + chunk
        if not self._shown_held and _HIDDEN_START.search(chunk) is None:
            return chunk  # nothing hidden: the first pass held back what it had to
        unfinished = _UNFINISHED.search(text, max(0, len(text) - MAX_HIDDEN))
        end = len(text) if unfinished is None else unfinished.start()
        if not self._found_in(text, end):  # only an unfinished sequence may wait
            self._shown_held = text[end:]
            return text[:end]
        view = _View(text, end)
        start = self._hold_start(view.shown)
        hold = end if start == len(view.shown) else view.origin(start)
        hold = max(hold, len(text) - self._longest - MAX_HIDDEN)  # bounded
        shown, cut = self._mask_shown(text, view, hold)
        self._shown_held = text[cut:]
        return shown

    def _hold_start(self, text: str) -> int:
        """Index of the longest suffix of ``text`` that is a proper prefix of some form.

        Every match starting before that index is final whatever follows, because at each
        earlier position every form is already known to match or not within ``text``.
        """
        for start in range(max(0, len(text) - self._longest + 1), len(text)):
            forms = self._by_first.get(text[start])
            if forms is None:
                continue
            tail = text[start:]
            if any(len(form) > len(tail) and form.startswith(tail) for form in forms):
                return start
        return len(text)
