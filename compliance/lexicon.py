"""Supervision lexicons compiled for matching: phrases and bounded patterns, linear time.

No Django here: the matcher takes terms and text and returns where each term matched.

* A **phrase** matches case-insensitively, its words separated by any run of white space,
  at word boundaries where it begins or ends with a letter or digit ("off the record").
* A **pattern** is an RE2 regular expression (``google-re2``). RE2 runs in time linear in
  the text, whatever the pattern, because it never backtracks: there is no catastrophic
  pattern to refuse at run time. What RE2 cannot do in linear time it refuses to compile
  (back-references, look-arounds, possessive and atomic groups), and so do we: a pattern
  is checked when it is added (``term_validate``), and refused, with RE2's reason, when it
  does not compile, is longer than ``TERM_MAX`` characters, needs more than
  ``RE2_MAX_MEM`` bytes of automaton (a counted repetition such as ``(a{100}){100}``), or
  matches the empty text (it would flag every message).
* A term may carry a **check** that a match must also pass: ``luhn`` (13 to 19 digits
  with a valid Luhn check digit, ISO/IEC 7812: card numbers) or ``iban`` (ISO 13616:
  15 to 34 letters and digits whose mod-97 is 1).

Text is matched after Unicode NFKC normalisation (UAX #15), so full-width and other
compatibility forms match their plain letters; hit positions are offsets, in code points,
into that normalised text (``text_normalise``).

All active terms are compiled into one ``re2.Set`` (up to ``SET_MAX_MEM`` of automaton):
one pass over the text says which terms match, and only those are run again for their
positions. A set too large for that runs each term on its own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import re2

TERM_MAX = 200
RE2_MAX_MEM = 1 << 20  # bytes of automaton a single pattern may take
SET_MAX_MEM = 64 << 20  # bytes of automaton for every term at once
HITS_MAX = 50  # positions kept per message; the rest are counted


class TermKind(StrEnum):
    PHRASE = "phrase"
    PATTERN = "pattern"


class TermCheck(StrEnum):
    NONE = ""
    LUHN = "luhn"
    IBAN = "iban"


class TermRefusedError(ValueError):
    """A term that cannot be matched safely or at all; ``str()`` says why, for the officer."""


@dataclass(frozen=True, slots=True)
class Term:
    id: int
    lexicon_id: int
    kind: str
    value: str
    check: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """Term ``term_id`` of lexicon ``lexicon_id`` matched ``[start, end)`` of the
    normalised text (code points)."""

    term_id: int
    lexicon_id: int
    start: int
    end: int


def _options(max_mem: int = RE2_MAX_MEM) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    return options


def text_normalise(text: str) -> str:
    """The text as it is matched: NFKC (UAX #15)."""
    return unicodedata.normalize("NFKC", text)


def _phrase_pattern(phrase: str) -> str:
    words = text_normalise(phrase).split()
    body = r"\s+".join(re2.escape(word) for word in words)
    start = r"\b" if words[0][0].isascii() and words[0][0].isalnum() else ""
    end = r"\b" if words[-1][-1].isascii() and words[-1][-1].isalnum() else ""
    return f"(?i){start}{body}{end}"


def term_pattern(*, kind: str, value: str) -> str:
    """The RE2 pattern a term compiles to (a phrase is escaped; a pattern is itself)."""
    return _phrase_pattern(value) if kind == TermKind.PHRASE else value


def term_validate(*, kind: str, value: str, check: str = "") -> str:
    """``value`` cleaned (stripped); raises ``TermRefusedError`` saying why a term cannot be
    used: an unknown kind or check, empty, longer than ``TERM_MAX``, a pattern RE2 does not
    compile (with RE2's reason) or that matches the empty text."""
    if kind not in set(TermKind):
        raise TermRefusedError(f"unknown kind of term {kind!r}")
    if check not in set(TermCheck):
        raise TermRefusedError(f"unknown check {check!r}")
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise TermRefusedError("a term is not empty")
    if len(cleaned) > TERM_MAX:
        raise TermRefusedError(f"a term is at most {TERM_MAX} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in cleaned):
        raise TermRefusedError("a term holds no control or format characters")
    try:
        compiled = re2.compile(term_pattern(kind=kind, value=cleaned), _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise TermRefusedError(f"the pattern does not compile: {reason}"[:300]) from None
    if compiled.search("") is not None:
        raise TermRefusedError("the pattern matches the empty text (it would flag everything)")
    return cleaned


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 1:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def check_passes(check: str, fragment: str) -> bool:
    """Whether a matched ``fragment`` passes ``check`` (separators ignored)."""
    if check == TermCheck.LUHN:
        digits = "".join(ch for ch in fragment if ch.isdigit() and ch.isascii())
        return 13 <= len(digits) <= 19 and _luhn(digits)
    if check == TermCheck.IBAN:
        code = "".join(ch for ch in fragment if ch.isalnum() and ch.isascii()).upper()
        if not 15 <= len(code) <= 34 or not code[:2].isalpha() or not code[2:4].isdigit():
            return False
        moved = code[4:] + code[:4]
        return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1
    return True


class Matcher:
    """Every active term, compiled once; ``match`` is safe to call from one thread at a
    time per instance (build one per job)."""

    def __init__(self, terms: Sequence[Term]) -> None:
        self.terms = list(terms)
        self._compiled = [
            re2.compile(term_pattern(kind=t.kind, value=t.value), _options()) for t in self.terms
        ]
        self._set: re2.Set | None = None
        if self.terms:
            candidate = re2.Set.SearchSet(_options(SET_MAX_MEM))
            for term in self.terms:
                candidate.Add(term_pattern(kind=term.kind, value=term.value))
            try:
                candidate.Compile()
                self._set = candidate
            except re2.error:
                # Too many terms for one automaton: each term runs on its own (still
                # linear per term, slower with many terms).
                self._set = None

    def match(self, text: str) -> tuple[list[Hit], int]:
        """The hits in ``text`` (at most ``HITS_MAX``, ordered by term then position) and
        how many there were in all."""
        if not self.terms or not text:
            return [], 0
        normalised = text_normalise(text)
        hits: list[Hit] = []
        total = 0
        candidates = (
            sorted(self._set.Match(normalised) or ())
            if self._set is not None
            else range(len(self.terms))
        )
        for index in candidates:
            term = self.terms[index]
            for found in self._compiled[index].finditer(normalised):
                start, end = found.span()
                if end == start or not check_passes(term.check, normalised[start:end]):
                    continue
                total += 1
                if len(hits) < HITS_MAX:
                    hits.append(Hit(term.id, term.lexicon_id, start, end))
        return hits, total
