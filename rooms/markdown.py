"""A safe Markdown subset, rendered on the server and sanitised.

No raw HTML, no images (nothing is ever loaded automatically), links open only
on click with ``rel="noopener noreferrer nofollow"``.

Mentions: ``@name`` where ``name``'s canonical form (PRECIS UsernameCaseMapped, RFC 8265:
"@Alice" is alice) is one of the members the message names becomes
``<span class="mention" data-user-id="7" title="@alice">@Alice Martin (alice)</span>``:
the member's display name with their username beside it (display names are not unique:
a name alone could be someone else's), the username as tooltip too. Only those members:
an ``@`` before anyone else (or inside code) stays text, and ``mention_names`` reads
mentions with the same parser, so only what shows as a mention notifies. The span is
built as tokens, escaped by the renderer, and passes the sanitiser like everything else
(the class ``mention`` alone, the two attributes alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from safechat.unicode_text import username_lookup_form

# "@name": what the posting service also reads as a mention (rooms.services.messages).
MENTION = re.compile(r"(?<![\w@])@([\w.@+-]{1,150})")
_NAME = re.compile(r"[\w.@+-]{1,150}")
_WORDISH = re.compile(r"[\w@]")


class MentionTarget(NamedTuple):
    """A member a message names, as its mention is shown."""

    user_id: int
    name: str  # display name


def mention_names(text: str) -> set[str]:
    """The canonical usernames ``text`` names with ``@`` (a trailing full stop is the
    sentence's, not the name's), where the page would show them as mentions: read by the
    renderer's own parser, so an ``@name`` in code, or in a link's address, is no mention
    (it stays text on the page, and notifies nobody)."""
    candidates = {username_lookup_form(m.group(1).rstrip(".")) for m in MENTION.finditer(text)}
    if not candidates:
        return set()
    targets = {name: MentionTarget(0, name) for name in candidates}
    return {
        child.meta["username"]
        for token in _md.parse(text, {"mentions": targets})
        for child in token.children or ()
        if child.type == "mention"
    }


def _mention_rule(state: StateInline, silent: bool) -> bool:
    targets: Mapping[str, MentionTarget] = state.env.get("mentions") or {}
    pos = state.pos
    if not targets or state.src[pos] != "@":
        return False
    if pos > 0 and _WORDISH.match(state.src[pos - 1]):
        return False  # an e-mail address, or "@@name"
    found = _NAME.match(state.src, pos + 1, state.posMax)
    if found is None:
        return False
    raw = found.group(0).rstrip(".")
    username = username_lookup_form(raw)
    target = targets.get(username) if raw else None
    if target is None:
        return False
    if not silent:
        token = state.push("mention", "span", 0)
        token.meta = {"user_id": target.user_id, "name": target.name, "username": username}
    state.pos = pos + 1 + len(raw)
    return True


def _render_mention(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    meta = tokens[idx].meta
    name, username = meta["name"], meta["username"]
    # The display name with the username beside it: display names are not unique (two
    # people may be called alike, or one may take another's name), usernames are.
    shown = f"@{name} ({username})" if name != username else f"@{username}"
    return (
        f'<span class="mention" data-user-id="{int(meta["user_id"])}" '
        f'title="@{escapeHtml(username)}">{escapeHtml(shown)}</span>'
    )


_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .disable("image")
    .disable("html_block")
    .disable("html_inline")
)
_md.inline.ruler.before("emphasis", "mention", _mention_rule)
_md.add_render_rule("mention", _render_mention)

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "hr", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}, "span": {"data-user-id", "title"}}


def render_markdown(text: str, *, mentions: Mapping[str, MentionTarget] | None = None) -> str:
    """HTML safe to insert in the portal: sanitised after rendering, whatever the input.

    ``mentions``: canonical username -> the member it names (see the module's docstring);
    nothing is marked up as a mention without it.
    """
    return nh3.clean(
        _md.render(text, {"mentions": dict(mentions or {})}),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes={"span": {"mention"}},
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
