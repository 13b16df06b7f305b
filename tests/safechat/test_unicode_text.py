"""The rules for names others read: PRECIS usernames (RFC 8265), UTS #39 skeletons,
bidirectional controls, invisible-only labels and emoji-only reactions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from safechat.unicode_text import (
    confusable_skeleton,
    refuse_bidi_controls,
    refuse_invisible_only,
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
    ],
    ids=["line-feed", "tab", "carriage-return", "escape", "bell", "delete", "next-line"],
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
