"""The rules for names others read: PRECIS usernames (RFC 8265), UTS #39 skeletons,
bidirectional controls, invisible-only labels and emoji-only reactions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from safechat.unicode_text import (
    case_insensitive_skeleton,
    confusable_skeleton,
    look_alike_keys,
    reaction_canonical,
    refuse_bidi_controls,
    refuse_invisible_only,
    refuse_stacked_marks,
    username_canonical,
    username_lookup_form,
    validate_label,
    validate_reaction,
)

CYRILLIC_A = "\u0430"
RLO = "\u202e"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Alice.Smith", "alice.smith"),
        ("ALICE", "alice"),
        ("\uff41lice", "alice"),  # fullwidth a is width-mapped
        ("J\u00f6rg", "j\u00f6rg"),
        ("jo\u0308rg", "j\u00f6rg"),  # NFC
    ],
)
def test_usernames_take_their_precis_username_case_mapped_form(typed: str, stored: str) -> None:
    assert username_canonical(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["", "al ice", f"{RLO}alice", "alice\u200b", "ali\u0000ce", "\u217b"],
    ids=["empty", "space", "rlo", "zero-width-space", "nul", "roman-numeral-compat"],
)
def test_usernames_the_profile_refuses_are_a_clear_error(typed: str) -> None:
    with pytest.raises(ValidationError) as refused:
        username_canonical(typed)

    assert refused.value.code == "username_invalid"
    assert username_lookup_form(typed) == typed  # a lookup of it finds nobody


@pytest.mark.parametrize(
    ("one", "other"),
    [("alice", f"{CYRILLIC_A}lice"), ("modern", "rnodern"), ("paypal", "paypa1")],
)
def test_look_alike_usernames_share_a_skeleton(one: str, other: str) -> None:
    assert one != other
    assert confusable_skeleton(one) == confusable_skeleton(other)


def test_different_usernames_have_different_skeletons() -> None:
    assert confusable_skeleton("alice") != confusable_skeleton("alicia")


@pytest.mark.parametrize(
    "control",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        RLO,
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_every_bidirectional_control_is_refused_in_a_label(control: str) -> None:
    with pytest.raises(ValidationError) as refused:
        refuse_bidi_controls(f"Rates{control} desk")

    assert refused.value.code == "bidi_control"


def test_right_to_left_scripts_themselves_are_welcome() -> None:
    validate_label("\u05e9\u05dc\u05d5\u05dd desk")  # Hebrew letters, no control
    validate_label("\u0645\u0643\u062a\u0628")  # Arabic


@pytest.mark.parametrize(
    "label",
    [" ", "\u200b\u200b", "\u3164", "\u2800", "\u00a0\u2003", "\u034f", "\ufe0f"],
    ids=["space", "zero-width", "hangul-filler", "braille-blank", "nbsp-em", "cgj", "vs16"],
)
def test_a_label_made_only_of_invisible_characters_is_refused(label: str) -> None:
    with pytest.raises(ValidationError) as refused:
        refuse_invisible_only(label)

    assert refused.value.code == "invisible"


@pytest.mark.parametrize(
    "label",
    [
        "Rates\ndesk",
        "Rates\tdesk",
        "Rates\rdesk",
        "Rates\x1b[31m",
        "Rates\x07",
        "Rates\x7f",
        "Rates\x85",
        "Rates\u2028desk",
        "Rates\u2029desk",
    ],
    ids=[
        "line-feed",
        "tab",
        "carriage-return",
        "escape",
        "bell",
        "delete",
        "next-line",
        "line-separator",
        "paragraph-separator",
    ],
)
def test_a_control_character_is_refused_in_a_label(label: str) -> None:
    # (a line break or a terminal's escape makes a name show as something else: in a
    # plain-text notice, a log or a terminal)
    with pytest.raises(ValidationError) as refused:
        validate_label(label)

    assert refused.value.code == "control_character"


def test_a_label_with_one_visible_character_passes() -> None:
    refuse_invisible_only("\u200bx\u200b")
    refuse_invisible_only("\U0001f4c8")  # an emoji is visible


@pytest.mark.parametrize(
    "reaction", ["\U0001f44d", "\u2764\ufe0f", "\U0001f44d\U0001f3fd", "\U0001f1ec\U0001f1e7"]
)
def test_a_reaction_is_one_emoji(reaction: str) -> None:
    validate_reaction(reaction)


@pytest.mark.parametrize(
    "reaction", ["ok", "+1", "\U0001f44d\U0001f44d", "\U0001f44dx", "", "lgtm"]
)
def test_a_reaction_is_never_a_word(reaction: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_reaction(reaction)

    assert refused.value.code == "reaction_not_emoji"


# --- Look-alikes in any case ------------------------------------------------------------
CYRILLIC_PATE = "\u0420\u0410\u0422\u0415"  # Cyrillic capitals ER, A, TE, IE


def test_zero_is_confusable_with_a_capital_o_so_only_the_case_insensitive_skeleton_meets() -> None:
    # given: confusables.txt maps 0 to O (a capital), so the plain skeletons differ
    assert confusable_skeleton("b0b.smith") != confusable_skeleton("bob.smith")

    # then the skeleton of the case-folded skeleton meets
    assert case_insensitive_skeleton("b0b.smith") == case_insensitive_skeleton("bob.smith")


def test_equal_plain_skeletons_stay_equal_case_insensitively() -> None:
    for one, other in [("alice", f"{CYRILLIC_A}lice"), ("modern", "rnodern")]:
        assert case_insensitive_skeleton(one) == case_insensitive_skeleton(other)
    assert case_insensitive_skeleton("alice") != case_insensitive_skeleton("alicia")


def test_capitals_that_look_alike_across_scripts_share_a_key() -> None:
    # given Cyrillic "PATE", whose lower-case form (with a small-capital-like te) does not
    # look like "pate"
    assert confusable_skeleton(CYRILLIC_PATE.casefold()) != confusable_skeleton("pate")

    # then the keys of the text as written meet
    assert look_alike_keys(CYRILLIC_PATE) & look_alike_keys("PATE")
    assert look_alike_keys(CYRILLIC_PATE) & look_alike_keys("Pate")
    assert not look_alike_keys("Rates") & look_alike_keys("Dates")


@pytest.mark.parametrize(
    "spaced",
    ["Trading  Desk", "Trading \u00a0 Desk", " Trading Desk", "Trading Desk\u3000"],
    ids=["two-spaces", "spaces-around-a-no-break-space", "leading", "trailing-ideographic"],
)
def test_labels_that_differ_only_in_runs_of_spaces_look_alike(spaced: str) -> None:
    # given a label that a page shows exactly as "Trading Desk" (HTML collapses a run of
    # white space into one space and drops it at the ends)
    # then it shares a key with "Trading Desk"
    assert look_alike_keys(spaced) & look_alike_keys("Trading Desk")
    assert not look_alike_keys("TradingDesk") & look_alike_keys("Trading Desk")


# --- Invisible characters inside a label --------------------------------------------------
@pytest.mark.parametrize(
    "label",
    [
        "Tr\u00adading",
        "Tr\u200bading",
        "Tr\u2060ading",
        "Tr\ufeffading",
        "Tr\u034fading",
        "Tra\ufe0fding",
        "Tr\u3164ading",
        "Tr\u200dading",
        "Tr\u200cading",
        "Trading\u00ad",
        "Tr\ufff9ading",
        "Tr\ufffbading",
    ],
    ids=[
        "soft-hyphen",
        "zero-width-space",
        "word-joiner",
        "bom",
        "cgj",
        "stray-vs16",
        "hangul-filler",
        "zwj-between-latin",
        "zwnj-between-latin",
        "trailing",
        "interlinear-annotation-anchor",
        "interlinear-annotation-terminator",
    ],
)
def test_a_default_ignorable_character_inside_a_label_is_refused(label: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_label(label)

    assert refused.value.code == "default_ignorable"
    assert "U+" in refused.value.messages[0]


@pytest.mark.parametrize(
    "label",
    [
        "Team \u2764\ufe0f",  # VS16 inside an emoji
        "\U0001f469\u200d\U0001f4bb devs",  # ZWJ sequence
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f desk",  # tags
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian ZWNJ (RFC 5892 A.1)
        "\u0915\u094d\u200d\u0937",  # ZWJ after a virama (A.2)
    ],
    ids=["emoji-vs16", "emoji-zwj", "emoji-tags", "persian-zwnj", "devanagari-zwj"],
)
def test_joiners_and_selectors_that_are_part_of_the_writing_are_kept(label: str) -> None:
    validate_label(label)


# --- One spelling per reaction ------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("\u2764", "\u2764\ufe0f"),
        ("\u2764\ufe0e", "\u2764\ufe0f"),
        ("\u2764\ufe0f", "\u2764\ufe0f"),
        ("\U0001f44d\ufe0f", "\U0001f44d"),
        ("\u263a", "\u263a\ufe0f"),
        ("#\u20e3", "#\ufe0f\u20e3"),
    ],
    ids=["heart-text-default", "heart-vs15", "heart-vs16", "thumbs-stray-vs16", "smile", "keycap"],
)
def test_a_reaction_takes_its_fully_qualified_spelling(typed: str, stored: str) -> None:
    assert reaction_canonical(typed) == stored


@pytest.mark.parametrize("typed", ["ok", "x\ufe0f", "1\ufe0f", "", "\ufe0f"])
def test_reaction_canonical_still_refuses_what_is_no_emoji(typed: str) -> None:
    with pytest.raises(ValidationError) as refused:
        reaction_canonical(typed)

    assert refused.value.code == "reaction_not_emoji"


@pytest.mark.parametrize(
    "label",
    [
        "Dan" + "\u0301" * 20,
        "Dan\u0301\u0301",
        "Dan\u0301\u0300\u0302\u0303\u0304",
        "\u00e9\u0300\u0302\u0303\u0304",  # a precomposed e-acute counts its accent
        "Ring\u20dd\u20dd",  # an enclosing mark repeated
    ],
    ids=["twenty-acute", "repeated-acute", "five-marks", "precomposed-plus-four", "enclosing"],
)
def test_stacked_combining_marks_are_refused_in_a_label(label: str) -> None:
    # (UTS #39, 5.4: no mark repeated at once, at most four in a row)
    with pytest.raises(ValidationError) as refused:
        validate_label(label)

    assert refused.value.code == "stacked_marks"


@pytest.mark.parametrize(
    "label",
    [
        "Nguy\u1ec5n V\u0103n \u0110\u1ee9c",  # Vietnamese: two marks on a letter
        "\u0915\u094d\u0937\u093f",  # Devanagari: a virama and a vowel sign
        "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd",  # pointed Hebrew
        "Dan\u0301\u0300\u0302\u0303",  # four different marks: the most allowed
    ],
    ids=["vietnamese", "devanagari", "hebrew", "four-marks"],
)
def test_writing_that_uses_combining_marks_passes(label: str) -> None:
    refuse_stacked_marks(label)
    validate_label(label)
