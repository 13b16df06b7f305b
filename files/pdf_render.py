"""Render the first page of a PDF read from standard input; run only as a child process.

``files.pdf_preview`` starts this script with ``python -I`` in a short-lived process whose
limits it sets before sending a byte (address space, CPU time, no file writes at all, few
descriptors) and kills at its deadline: a hostile PDF that crashes PDFium, loops or eats
memory ends this process, never the worker. It imports nothing of SafeChat (no Django, no
settings, no keys; its environment is empty) and writes nothing but its answer:

    stdin   the PDF, whole (at most the size given as the first argument)
    argv    max_source_bytes, edge (pixels, the longer side), max_page_points
    stdout  b"SCPV" || width (2 bytes, big-endian) || height (2 bytes) || RGB pixels
    exit    0 rendered; 2 unreadable; 3 the page size is refused; 4 too large; other:
            not rendered (killed by a limit, a crash)
"""

from __future__ import annotations

import struct
import sys

MAGIC = b"SCPV"
EXIT_UNREADABLE = 2
EXIT_PAGE_REFUSED = 3
EXIT_TOO_LARGE = 4


def main(argv: list[str]) -> int:
    max_source, edge, max_points = int(argv[1]), int(argv[2]), float(argv[3])
    data = sys.stdin.buffer.read(max_source + 1)
    if len(data) > max_source:
        return EXIT_TOO_LARGE

    import pypdfium2  # here, after the limits were set: its library loads under them

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        return EXIT_UNREADABLE  # corrupt, encrypted with a password, not a PDF
    if len(document) < 1:
        return EXIT_UNREADABLE
    page = document[0]
    width, height = page.get_size()  # points, 1/72 inch
    longer = max(width, height)
    # A page over the PDF specification's largest (14,400 units a side), empty, or so thin
    # that its shorter side would be under a pixel is refused before anything is drawn.
    if not (0 < width <= max_points and 0 < height <= max_points):
        return EXIT_PAGE_REFUSED
    scale = edge / longer  # vector content: drawn at the preview's size, never scaled after
    if min(width, height) * scale < 1:
        return EXIT_PAGE_REFUSED
    bitmap = page.render(
        scale=scale,
        fill_color=(255, 255, 255, 255),
        may_draw_forms=False,
        rev_byteorder=True,  # RGB, not BGR
    )
    image = bitmap.to_pil().convert("RGB")
    pixels = image.tobytes()
    out = sys.stdout.buffer
    out.write(MAGIC + struct.pack(">HH", image.width, image.height))
    out.write(pixels)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
