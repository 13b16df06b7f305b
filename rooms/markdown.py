"""A safe Markdown subset, rendered on the server and sanitised.

No raw HTML, no images (nothing is ever loaded automatically), links open only
on click with ``rel="noopener noreferrer nofollow"``.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .disable("image")
    .disable("html_block")
    .disable("html_inline")
)

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}}


def render_markdown(text: str) -> str:
    """HTML safe to insert in the portal: sanitised after rendering, whatever the input."""
    return nh3.clean(
        _md.render(text),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
