"""Rules for text people choose and others read as a name: usernames, room names and
topics, display names, reactions. None of them may deceive the reader.

* **Usernames** are enforced with the PRECIS ``UsernameCaseMapped`` profile (RFC 8265,
  section 3.3, via ``precis-i18n``): width-mapped, case-folded, NFC; spaces, controls
  and default-ignorable code points refused. ``Alice.Smith`` is stored, typed and
  mentioned as ``alice.smith``.
* **Confusable skeletons** (Unicode TS #39, section 4, computed by ICU's
  ``SpoofChecker``): two usernames whose skeletons are equal look alike (``alice`` and
  ``alice`` spelt with the Cyrillic a U+0430, ``rn`` and ``m``) and may not both exist.
* **Mixed scripts** in a new username are refused at UTS #39's Highly Restrictive level
  (section 5.2): one script, or Latin with the Chinese, Japanese or Korean scripts
  (``refuse_mixed_scripts``), so "bob.smith" with a Cyrillic be (U+0431) for its b is
  refused.
* **Mentionable usernames**: a new username has a letter or a digit and does not end
  with a full stop (``refuse_unmentionable_username``), so "@name" always names it.
* **Bidirectional controls** (the embeddings, overrides and isolates of UAX #9, and the
  marks LRM, RLM and ALM) are refused in every label: a name must not reorder the text
  around it. Templates isolate labels too (``<bdi>``, ``dir="auto"``).
* **Invisible-only labels** (only spaces, format characters, default-ignorable code
  points or blank-looking fillers) are refused: a room must have a name one can see.
* **Control characters** (Unicode category Cc: C0, DEL and C1, line breaks and tabs
  too, and the line and paragraph separators U+2028, U+2029) are refused in every label:
  a name is one line of text, and a line break or a terminal's escape sequence would make
  it show as something else in a plain-text notice, a log or a terminal.
* **Default-ignorable code points inside a label** (a soft hyphen, a zero-width space, a
  word joiner, a variation selector on a letter, a Hangul filler), and any other format
  character that draws nothing (the interlinear annotation characters), are refused:
  "Tr\u00adading" shows as "Trading" and would pass for it. Kept where they are part of
  what is written: inside an emoji sequence (its variation selector, zero-width joiner or
  tags), and the zero-width joiner and non-joiner where RFC 5892 (appendix A.1, A.2, as
  PRECIS applies it) allows them (after a virama; the non-joiner between joining letters,
  as Persian needs).
* **Look-alike labels** compare by ``look_alike_keys``, runs of white space folded to one
  space as a page shows them: the skeleton of the case-folded text and the case-folded
  skeleton of the text as written, so capitals that look alike across scripts ("PATE" in
  Cyrillic capitals and in Latin) and digits confusable with a capital ("b0b" and "bob":
  0 is confusable with O) are caught whatever the case.
* **Stacked combining marks** (more than four in a row on one letter, or one mark
  repeated: UTS #39, section 5.4) are refused in every label and topic: they draw over
  the rows around them.
* **Display names** hold no "@" (``refuse_at_sign``): "@" marks a username, and a name
  must not carry someone else's.
* **Reactions** are one emoji from the Unicode emoji set (``emoji`` package), never words,
  kept in one spelling (``reaction_canonical``: "❤", "❤︎" and "❤️" are the same reaction).

The validators raise Django's ``ValidationError`` with a stable ``code``; models, forms,
serializers and services all use these, so every edge gives the same answer.
"""

from __future__ import annotations

import threading
import unicodedata

import emoji
import icu
from django.core.exceptions import ValidationError
from precis_i18n import get_profile
from precis_i18n.context import rule_zero_width_joiner, rule_zero_width_nonjoiner
from precis_i18n.unicode import UnicodeData

_USERNAME = get_profile("UsernameCaseMapped")
_UCD = UnicodeData()
_LOCAL = threading.local()

# UAX #9 explicit directional formatting characters and the implicit marks.
BIDI_CONTROLS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE PDF LRO RLO
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI
)
# The explicit embeddings, overrides and isolates alone (UAX #9, 2.1 to 2.4): what makes
# text show in another order than it was written ("8765-4321" for "1234-5678"). The
# implicit marks (LRM, RLM, ALM) only nudge neutral characters and are kept in messages.
BIDI_EXPLICIT = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that render as blank space but are not default-ignorable.
_BLANK_LOOKING = frozenset("\u2800\u3164\uffa0\u115f\u1160")
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})


def username_canonical(value: str) -> str:
    """The PRECIS ``UsernameCaseMapped`` form of ``value`` (RFC 8265, 3.3).

    Raises ``ValidationError`` (code ``username_invalid``) naming the first character
    the profile refuses, or if nothing is left.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError("Enter a username.", code="username_invalid")
    try:
        return str(_USERNAME.enforce(value))
    except UnicodeEncodeError as exc:
        bad = value[exc.start] if 0 <= exc.start < len(value) else ""
        shown = f"U+{ord(bad):04X}" if bad else "a character"
        what = "spaces" if bad.isspace() else f"{shown} ({unicodedata.name(bad, 'unnamed')})"
        raise ValidationError(
            f"A username may not contain {what}.", code="username_invalid"
        ) from None


def username_lookup_form(value: str) -> str:
    """``value`` as stored, for a lookup: its canonical form, or ``value`` unchanged if it
    is no valid username (a lookup of it then finds nobody, as it should)."""
    try:
        return username_canonical(value)
    except ValidationError:
        return value


def _spoof_checker() -> icu.SpoofChecker:
    checker = getattr(_LOCAL, "checker", None)
    if checker is None:
        checker = _LOCAL.checker = icu.SpoofChecker()
    return checker


def confusable_skeleton(value: str) -> str:
    """The UTS #39 skeleton of ``value`` (section 4, ``skeleton(X)``), by ICU.

    For comparison only, never for display: equal skeletons mean the strings look alike.
    """
    return str(_spoof_checker().getSkeleton(0, value))


def case_insensitive_skeleton(value: str) -> str:
    """The UTS #39 skeleton of the case-folded skeleton of ``value``:
    ``skeleton(casefold(skeleton(value)))``.

    UTS #39 maps some characters to a capital prototype (``0`` to ``O``, ``I`` to ``l``),
    so ``skeleton("b0b")`` is ``"bOb"`` and ``skeleton("bob")`` is ``"bob"``: a plain
    skeleton of case-folded text misses them. Folding the skeleton's case and mapping
    again makes strings that look alike in any case meet ("b0b.smith" and "bob.smith";
    "PATE" in Cyrillic capitals and in Latin). Equal skeletons of ``value`` give equal results.
    For comparison only, never for display.
    """
    return confusable_skeleton(confusable_skeleton(value).casefold())


def look_alike_keys(value: str) -> frozenset[str]:
    """The keys by which a label is compared with others: two labels look alike when they
    share a key. ``value`` is NFKC-normalised first, and each run of white space is one
    space with none at the ends, as a page shows it (HTML collapses "Trading  Desk" to
    "Trading Desk"); then the skeleton of its case-folded
    form ("Rates" and "rates" meet) and ``case_insensitive_skeleton`` of it as written
    (capitals that look alike across scripts meet, and digits confusable with capitals)."""
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    return frozenset({confusable_skeleton(text.casefold()), case_insensitive_skeleton(text)})


def validate_username(value: str) -> None:
    """Refuse a username that is not already in its PRECIS canonical form."""
    if username_canonical(value) != value:
        raise ValidationError(
            "A username is stored in lower case and its standard form.",
            code="username_not_canonical",
        )


def _restriction_checker() -> icu.SpoofChecker:
    checker = getattr(_LOCAL, "restriction", None)
    if checker is None:
        checker = _LOCAL.restriction = icu.SpoofChecker()
        checker.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL)
        checker.setRestrictionLevel(icu.URestrictionLevel.HIGHLY_RESTRICTIVE)
    return checker


def refuse_mixed_scripts(value: str) -> None:
    """Refuse a username whose letters mix scripts beyond UTS #39's **Highly Restrictive**
    level (section 5.2, checked by ICU's ``SpoofChecker``): its letters come from one
    script, or from Latin with Han, Hiragana and Katakana (Japanese), Latin with Han and
    Bopomofo (Chinese), or Latin with Han and Hangul (Korean); Common and Inherited
    characters (digits, ``.``, ``-``, ``_``, combining marks) go with any. "bob.smith"
    with a Cyrillic be (U+0431) for its b is refused; a name all in Cyrillic, "山田.taro"
    and "jürgen" are usernames. Code ``username_mixed_scripts``."""
    if _restriction_checker().check(value) & icu.USpoofChecks.RESTRICTION_LEVEL:
        raise ValidationError(
            "A username may not mix letters of different scripts (such as a Cyrillic "
            "letter among Latin ones): use the letters of one script (Latin may go with "
            "Chinese, Japanese or Korean characters).",
            code="username_mixed_scripts",
        )


def refuse_unmentionable_username(value: str) -> None:
    """Refuse a username no mention could name as itself: one ending with a full stop
    ("@bob.smith." at the end of a sentence names bob.smith: the stop is the sentence's,
    ``rooms.markdown.mention_names``), or with no letter or digit at all ("." or "@-_",
    which read as punctuation, not as a person). Code ``username_shape``."""
    if not any(c.isalnum() for c in value):
        raise ValidationError("A username needs a letter or a digit.", code="username_shape")
    if value.endswith("."):
        raise ValidationError(
            "A username may not end with a full stop: a mention at the end of a sentence "
            "would name someone else.",
            code="username_shape",
        )


def refuse_bidi_controls(value: str) -> None:
    """Refuse text containing a bidirectional control (UAX #9); code ``bidi_control``."""
    found = next((c for c in value if c in BIDI_CONTROLS), None)
    if found is not None:
        raise ValidationError(
            f"Text may not contain the direction control U+{ord(found):04X} "
            f"({unicodedata.name(found, 'unnamed')}).",
            code="bidi_control",
        )


def refuse_bidi_explicit(value: str) -> None:
    """Refuse text containing an explicit directional embedding, override or isolate
    (UAX #9, ``BIDI_EXPLICIT``): in a message, an amount or an account number could show
    reversed. Code ``bidi_control``; the implicit marks are allowed (right-to-left
    writing uses them)."""
    found = next((c for c in value if c in BIDI_EXPLICIT), None)
    if found is not None:
        raise ValidationError(
            f"A message may not contain the direction control U+{ord(found):04X} "
            f"({unicodedata.name(found, 'unnamed')}): it can make text, such as a number, "
            "show in another order than it was written.",
            code="bidi_control",
        )


def is_visible(char: str) -> bool:
    """Whether ``char`` draws something: not a space, control, format, mark alone,
    default-ignorable code point or blank-looking filler."""
    if char in _BLANK_LOOKING:
        return False
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return False
    return not _UCD.default_ignorable(ord(char))


def refuse_invisible_only(value: str) -> None:
    """Refuse a non-empty label in which no character is visible; code ``invisible``."""
    if value and not any(is_visible(c) for c in value):
        raise ValidationError("A name needs at least one visible character.", code="invisible")


_LINE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def refuse_control_characters(value: str) -> None:
    """Refuse text containing a control character (category Cc: C0, DEL, C1) or a line or
    paragraph separator (U+2028, U+2029, categories Zl and Zp: line breaks, UAX #14 class
    BK); code ``control_character``."""
    found = next((c for c in value if unicodedata.category(c) in _LINE_CATEGORIES), None)
    if found is not None:
        what = "control character" if unicodedata.category(found) == "Cc" else "line break"
        raise ValidationError(
            f"A name may not contain the {what} U+{ord(found):04X}.",
            code="control_character",
        )


_JOINERS = {"\u200c": rule_zero_width_nonjoiner, "\u200d": rule_zero_width_joiner}
# Unicode's Prepended_Concatenation_Mark (PropList.txt): format characters (Cf) that are
# drawn, such as the Arabic number sign; every other format character draws nothing.
_DRAWN_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2")
_DRAWN_FORMAT |= {"\U000110bd", "\U000110cd"}


def _invisible_format(char: str) -> bool:
    """Whether ``char`` is a format character (Cf) that draws nothing but is not
    default-ignorable, such as the interlinear annotation characters U+FFF9 to U+FFFB."""
    return unicodedata.category(char) == "Cf" and char not in _DRAWN_FORMAT


_EMOJI_STANDIN = "\ufffc"  # an emoji sequence, while the rest of a label is checked


def refuse_default_ignorable(value: str) -> None:
    """Refuse a default-ignorable code point (Unicode ``Default_Ignorable_Code_Point``:
    soft hyphen, zero-width space, word joiner, variation selectors, fillers...), or any
    other format character that draws nothing (category Cf, as the interlinear annotation
    characters U+FFF9 to U+FFFB), anywhere in ``value``, except inside an emoji sequence
    (``emoji`` package) and the zero-width joiner and non-joiner where RFC 5892, appendix
    A.1 and A.2, allow them. Code
    ``default_ignorable``, naming the character."""
    rest, end = "", 0
    for found in emoji.emoji_list(value):  # offsets into ``value``, stray selectors kept
        rest += value[end : found["match_start"]] + _EMOJI_STANDIN
        end = found["match_end"]
    rest += value[end:]
    for offset, char in enumerate(rest):
        if not _UCD.default_ignorable(ord(char)) and not _invisible_format(char):
            continue
        rule = _JOINERS.get(char)
        if rule is not None and rule(rest, offset, _UCD):
            continue
        raise ValidationError(
            f"A name may not contain the invisible character U+{ord(char):04X} "
            f"({unicodedata.name(char, 'unnamed')}): it would look like another name.",
            code="default_ignorable",
        )


def refuse_at_sign(value: str) -> None:
    """Refuse a display name part holding "@" (or a form of it that NFKC folds to "@", such
    as the fullwidth U+FF20): others read a person as "First Last (@username)", so a name
    "Martin (@alice)" on the account eve would read as alice ("Alice Martin (@alice)
    (@eve)"). Code ``at_sign``."""
    if "@" in unicodedata.normalize("NFKC", value) or "@" in confusable_skeleton(value):
        raise ValidationError(
            'A name may not contain "@": beside a name, "@" marks a username.',
            code="at_sign",
        )


# UTS #39, section 5.4 (optional detection): at most this many nonspacing marks in a row.
MARKS_IN_A_ROW_MAX = 4
_MARK_CATEGORIES = frozenset({"Mn", "Me"})


def refuse_stacked_marks(value: str) -> None:
    """Refuse a pile of combining marks, which draws over the lines around it ("Dan" with
    twenty acute accents): after canonical decomposition (NFD), more than
    ``MARKS_IN_A_ROW_MAX`` (4) nonspacing or enclosing marks (categories Mn, Me) in a row,
    or one mark repeated at once, as UTS #39, section 5.4, recommends. Vietnamese,
    Devanagari or pointed Hebrew need no more. Code ``stacked_marks``."""
    run: list[str] = []
    for char in unicodedata.normalize("NFD", value):
        if unicodedata.category(char) not in _MARK_CATEGORIES:
            run = []
            continue
        if run and run[-1] == char:
            raise ValidationError(
                f"Text may not repeat the combining mark U+{ord(char):04X} "
                f"({unicodedata.name(char, 'unnamed')}) on one letter.",
                code="stacked_marks",
            )
        run.append(char)
        if len(run) > MARKS_IN_A_ROW_MAX:
            raise ValidationError(
                f"Text may carry at most {MARKS_IN_A_ROW_MAX} combining marks on one letter.",
                code="stacked_marks",
            )


def validate_label(value: str) -> None:
    """The rules of a name others read (a room's name, a display name, a token's name): no
    bidi control, no control character, at least one visible character, no
    default-ignorable (invisible) character inside it (``refuse_default_ignorable``), and
    no pile of combining marks (``refuse_stacked_marks``)."""
    refuse_bidi_controls(value)
    refuse_control_characters(value)
    refuse_invisible_only(value)
    refuse_default_ignorable(value)
    refuse_stacked_marks(value)


def validate_topic(value: str) -> None:
    """The rules of a room's topic (free text on one line under the name): no bidi control
    and no pile of combining marks (``refuse_stacked_marks``)."""
    refuse_bidi_controls(value)
    refuse_stacked_marks(value)


_PRESENTATION_SELECTORS = str.maketrans("", "", "\ufe0e\ufe0f")


def _fully_qualified() -> dict[str, str]:
    found: dict[str, str] = {}
    for entry, data in emoji.EMOJI_DATA.items():
        if data.get("status") == emoji.STATUS["fully_qualified"]:
            found.setdefault(entry.translate(_PRESENTATION_SELECTORS), entry)
    return found


_FULLY_QUALIFIED = _fully_qualified()


def reaction_canonical(value: str) -> str:
    """The one spelling of the reaction ``value``: its fully-qualified emoji (Unicode
    emoji-test.txt, from the ``emoji`` package), whatever presentation selectors it was
    typed with: "❤" (text default), "❤︎" (VS15) and "❤️" (VS16) are all "❤️", and
    "👍︎" is "👍". Validated (``validate_reaction``); raises ``ValidationError`` (code
    ``reaction_not_emoji``) for anything but one emoji."""
    if not isinstance(value, str):
        raise ValidationError("A reaction is a single emoji.", code="reaction_not_emoji")
    canonical = _FULLY_QUALIFIED.get(value.translate(_PRESENTATION_SELECTORS), value)
    validate_reaction(canonical)
    return canonical


def reaction_same(a: str, b: str) -> bool:
    """Whether the reactions ``a`` and ``b`` are one emoji once each takes its one spelling
    (``reaction_canonical``); a stored value that is no emoji is only itself."""
    return reaction_key(a) == reaction_key(b)


def reaction_key(value: str) -> str:
    """``reaction_canonical(value)``, or ``value`` itself when it is no emoji: for grouping
    stored reactions, which never raises."""
    try:
        return reaction_canonical(value)
    except ValidationError:
        return value


def validate_reaction(value: str) -> None:
    """Refuse a reaction that is not exactly one emoji of the Unicode emoji set
    (``emoji.is_emoji``: fully-qualified sequences, ZWJ sequences and keycaps included);
    code ``reaction_not_emoji``."""
    if not isinstance(value, str) or not emoji.is_emoji(value):
        raise ValidationError("A reaction is a single emoji.", code="reaction_not_emoji")
