"""What the portal's reaction picker offers: a few quick reactions, and every emoji of the
``emoji`` package's data (the Unicode emoji list with its CLDR short names, kept current
by that package), never a list of our own.

Built once per process from the package and served as JSON (``rooms.views.emoji_list``).
Every entry is one a reaction may be, in its stored spelling
(``safechat.unicode_text.reaction_canonical``, the
service's length limit): the picker never offers what the server would refuse. Left out,
to keep the list one a person can search: skin-tone variants (each of those emoji is
offered in its default form), and emoji newer than ``PICKER_MAX_EMOJI_VERSION``, which
the fonts of many desks cannot draw yet (the server still accepts them, from the API).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import emoji
from django.core.exceptions import ValidationError

from rooms.services.messages import MAX_EMOJI_LENGTH
from safechat.unicode_text import reaction_canonical

# Offered first, one press each: agreement, thanks, done, seen, and a few feelings.
QUICK_REACTIONS: tuple[str, ...] = ("👍", "❤️", "😂", "🎉", "😮", "🙏", "✅", "👀")
# Emoji 15.0 (2022): drawn by the fonts of current desktop and mobile systems.
PICKER_MAX_EMOJI_VERSION = 15.0
# Fitzpatrick modifiers (Unicode UTS #51, "Emoji Modifiers").
_SKIN_TONES = frozenset(chr(code) for code in range(0x1F3FB, 0x1F400))


@dataclass(frozen=True)
class PickerEmoji:
    """One emoji the picker offers: the emoji, its CLDR short name in English ("thumbs
    up") and the package's other names for it ("+1 thumbsup"), to search by."""

    emoji: str
    name: str
    aliases: str


def _words(short_name: str) -> str:
    """``:thumbs_up:`` as ``thumbs up``."""
    return short_name.strip(":").replace("_", " ")


def _reactable(value: str) -> bool:
    if len(value) > MAX_EMOJI_LENGTH:
        return False
    try:
        return reaction_canonical(value) == value  # offered in the spelling stored
    except ValidationError:
        return False


@functools.cache
def picker_emoji() -> tuple[PickerEmoji, ...]:
    """Every emoji the picker lists, in the package's order (by English name)."""
    fully_qualified = emoji.STATUS["fully_qualified"]
    found = []
    for value, data in emoji.EMOJI_DATA.items():
        if data.get("status") != fully_qualified or _SKIN_TONES.intersection(value):
            continue
        if float(data.get("E", 0)) > PICKER_MAX_EMOJI_VERSION or not _reactable(value):
            continue
        aliases = " ".join(_words(alias) for alias in data.get("alias", ()))
        found.append(PickerEmoji(emoji=value, name=_words(str(data["en"])), aliases=aliases))
    return tuple(found)


@functools.cache
def picker_json() -> bytes:
    """The picker's list as JSON: ``{"version": <the emoji package's>, "emoji": [[emoji,
    name, aliases], ...]}`` (arrays, not objects: about 1,900 entries in one response)."""
    body = {
        "version": emoji.__version__,
        "emoji": [[entry.emoji, entry.name, entry.aliases] for entry in picker_emoji()],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@functools.cache
def picker_etag() -> str:
    """A strong validator of ``picker_json`` (it changes only with the package)."""
    return hashlib.sha256(picker_json()).hexdigest()[:32]


def quick_reactions() -> list[dict[str, str]]:
    """The quick reactions with their names, for the page's configuration."""
    names = {entry.emoji: entry.name for entry in picker_emoji()}
    return [{"emoji": value, "name": names.get(value, "")} for value in QUICK_REACTIONS]
