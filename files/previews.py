"""Previews of images and of a PDF's first page: rendered in memory from a clean file's
plaintext, never written in clear.

PNG, JPEG, WebP and GIF (its first frame) are recognised by their leading bytes, not by
the name or the declared type. The image is decoded by Pillow only after clamd said clean,
only when the whole file fits ``PREVIEW_MAX_SOURCE_BYTES``, and only when its declared
dimensions stay under ``PREVIEW_MAX_PIXELS`` (checked on the header before any pixel is
decoded; Pillow's own decompression-bomb guard, ``Image.MAX_IMAGE_PIXELS``, is made an
error too). The preview is at most ``PREVIEW_EDGE`` pixels on its longer side, re-encoded
(PNG when the image has transparency, JPEG otherwise), so no metadata of the original
(EXIF: place, device) survives. A PDF (``%PDF-``) is drawn by PDFium in a sandboxed
child process (``files.pdf_preview``) and encoded as JPEG here. Anything that fails gives
no preview, never an error: the file stays downloadable.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from files.pdf_preview import pdf_first_page_pixels

logger = logging.getLogger(__name__)

PREVIEW_EDGE = 640  # pixels, the longer side
PREVIEW_MAX_SOURCE_BYTES = 20 * 1024 * 1024
PREVIEW_MAX_PIXELS = 40_000_000  # width x height of the original, e.g. 8000 x 5000

PDF_SIGNATURE = b"%PDF-"
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


@dataclass(frozen=True)
class Preview:
    image: bytes
    content_type: str  # image/png or image/jpeg


def image_format_sniffed(head: bytes) -> str | None:
    """The Pillow format name of an image we preview, from its first 12 bytes; else None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def preview_kind_sniffed(head: bytes) -> str | None:
    """What a file starting with ``head`` (12 bytes at least) is previewed as: a Pillow
    format name, "PDF", or None for a file that gets no preview."""
    if head.startswith(PDF_SIGNATURE):
        return "PDF"
    return image_format_sniffed(head)


def preview_render(data: bytes) -> Preview | None:
    """A preview of the image or PDF ``data`` (bytes, whole), or None for anything else.

    None also for an image larger than ``PREVIEW_MAX_PIXELS`` (a decompression bomb: its
    dimensions are refused before its pixels are decoded), a truncated or corrupt image,
    or one Pillow cannot read; for a PDF that cannot be rendered within the sandbox's
    limits, or whose first page is over ``PDF_MAX_PAGE_POINTS`` a side. Memory: the
    decoded original is bounded by the pixel cap (a PDF's by the sandbox's).
    """
    kind = preview_kind_sniffed(data[:12])
    if kind is None or len(data) > PREVIEW_MAX_SOURCE_BYTES:
        return None
    if kind == "PDF":
        return _pdf_preview(data)
    try:
        with warnings.catch_warnings():
            # Over Pillow's own limit it only warns up to twice the limit: refuse instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as source:
                width, height = source.size
                if width * height > PREVIEW_MAX_PIXELS or width < 1 or height < 1:
                    logger.info("preview refused: %dx%d pixels is over the limit", width, height)
                    return None
                source.seek(0)  # a GIF's or an animated WebP's first frame
                if kind == "JPEG":
                    # Decode at a reduced scale where JPEG allows: less memory, faster.
                    source.draft("RGB", (PREVIEW_EDGE, PREVIEW_EDGE))
                image = ImageOps.exif_transpose(source)
                image.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
                transparent = image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                )
                out = io.BytesIO()
                if transparent:
                    image.convert("RGBA").save(out, format="PNG", optimize=True)
                    return Preview(image=out.getvalue(), content_type="image/png")
                image.convert("RGB").save(out, format="JPEG", quality=82)
                return Preview(image=out.getvalue(), content_type="image/jpeg")
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        logger.info("no preview: %s", type(exc).__name__)
        return None


def _pdf_preview(data: bytes) -> Preview | None:
    rendered = pdf_first_page_pixels(data, max_source=PREVIEW_MAX_SOURCE_BYTES, edge=PREVIEW_EDGE)
    if rendered is None:
        return None
    width, height, pixels = rendered
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, format="JPEG", quality=82)
    return Preview(image=out.getvalue(), content_type="image/jpeg")
