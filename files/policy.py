"""Which files the vault accepts: by name, by declared type and by what the bytes are.

Three checks, each with a setting (docs/files.md, "Type policy"):

* at creation, the name's extension (``SAFECHAT_FILE_BLOCKED_EXTENSIONS``, and when set
  the allow list ``SAFECHAT_FILE_ALLOWED_EXTENSIONS``) and the declared content type
  (``SAFECHAT_FILE_BLOCKED_TYPES``);
* as the first bytes of plaintext stream through the first append, their signature
  (magic number, :func:`sniff`): a blocked kind (``SAFECHAT_FILE_BLOCKED_KINDS``:
  Windows PE, ELF, Mach-O and Java class files, scripts with a ``#!`` line) is refused
  whatever the file is called;
* the same bytes against the name and the declared type: a file whose content is one
  known kind while its extension or type says another (a PNG called ``.pdf``, random
  bytes called ``.pdf``, a ZIP declared ``image/png``) is refused. Extensions and types
  outside the table (``.txt``, ``.csv``, ``text/plain``...) say nothing and pass.

The sniffed bytes are held in memory only, never written. A ZIP container is one kind:
the Office Open XML and OpenDocument formats are ZIPs, so a ``.docm`` is recognised by its
name and declared type only (its macros sit in an entry anywhere in the archive).
Pure functions: no Django import beyond the settings read by the callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from files.names import DEFAULT_CONTENT_TYPE

# Enough for every signature below; the append keeps at most this much in memory.
SNIFF_BYTES = 4096

DEFAULT_BLOCKED_EXTENSIONS = (
    # executables and installers
    "exe", "dll", "com", "scr", "msi", "msp", "cpl", "sys", "drv", "pif",
    "elf", "so", "dylib", "app", "deb", "rpm", "apk", "jar", "class",
    # scripts
    "js", "mjs", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "psm1", "bat", "cmd",
    "sh", "hta", "lnk", "reg", "py", "pl",
    # macro-enabled Office documents and templates
    "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam",
)  # fmt: skip
DEFAULT_BLOCKED_TYPES = (
    "application/x-msdownload",
    "application/x-dosexec",
    "application/x-executable",
    "application/x-elf",
    "application/x-mach-binary",
    "application/x-msi",
    "application/x-ms-installer",
    "application/java-archive",
    "application/java-vm",
    "application/vnd.android.package-archive",
    "application/javascript",
    "text/javascript",
    "application/x-sh",
    "application/x-bat",
    "application/x-msdos-program",
    "application/hta",
    "text/vbscript",
    "application/vnd.ms-word.document.macroenabled.12",
    "application/vnd.ms-word.template.macroenabled.12",
    "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.ms-excel.template.macroenabled.12",
    "application/vnd.ms-excel.addin.macroenabled.12",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12",
    "application/vnd.ms-powerpoint.slideshow.macroenabled.12",
    "application/vnd.ms-powerpoint.addin.macroenabled.12",
)
DEFAULT_BLOCKED_KINDS = ("pe", "elf", "macho", "java-class", "script")


@dataclass(frozen=True)
class Kind:
    """A format recognised by its first bytes, with the names and types it goes by."""

    name: str
    extensions: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()


def _kind(name: str, extensions: str = "", types: str = "") -> Kind:
    return Kind(name, frozenset(extensions.split()), frozenset(types.split()))


_OOXML = "application/vnd.openxmlformats-officedocument."
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        _kind("pe", "exe dll com scr sys cpl msi", "application/x-msdownload"),
        _kind("elf", "elf so", "application/x-executable"),
        _kind("macho", "dylib", "application/x-mach-binary"),
        _kind("java-class", "class", "application/java-vm"),
        _kind("script", "sh py pl", "application/x-sh"),
        _kind("pdf", "pdf", "application/pdf"),
        _kind("png", "png", "image/png"),
        _kind("jpeg", "jpg jpeg jpe jfif", "image/jpeg image/pjpeg"),
        _kind("gif", "gif", "image/gif"),
        _kind("webp", "webp", "image/webp"),
        _kind("tiff", "tif tiff", "image/tiff"),
        _kind(
            "zip",
            "zip docx xlsx pptx dotx xltx potx ppsx odt ods odp odg epub jar apk "
            "docm dotm xlsm xltm xlam pptm potm ppsm ppam",
            f"application/zip application/x-zip-compressed application/epub+zip "
            f"{_OOXML}wordprocessingml.document {_OOXML}wordprocessingml.template "
            f"{_OOXML}spreadsheetml.sheet {_OOXML}spreadsheetml.template "
            f"{_OOXML}presentationml.presentation {_OOXML}presentationml.slideshow "
            f"{_OOXML}presentationml.template "
            "application/vnd.oasis.opendocument.text "
            "application/vnd.oasis.opendocument.spreadsheet "
            "application/vnd.oasis.opendocument.presentation "
            "application/vnd.oasis.opendocument.graphics",
        ),
        _kind(
            "ole2",
            "doc dot xls xlt ppt pot pps msg",
            "application/msword application/vnd.ms-excel application/vnd.ms-powerpoint "
            "application/vnd.ms-outlook application/x-ole-storage",
        ),
        _kind("gzip", "gz tgz", "application/gzip application/x-gzip"),
        _kind("7z", "7z", "application/x-7z-compressed"),
        _kind("rar", "rar", "application/vnd.rar application/x-rar-compressed"),
        _kind("rtf", "rtf", "application/rtf text/rtf"),
    )
}

# (offset, signature, kind): the first that matches names the content's kind.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"MZ", "pe"),
    (0, b"\x7fELF", "elf"),
    (0, b"\xfe\xed\xfa\xce", "macho"),
    (0, b"\xfe\xed\xfa\xcf", "macho"),
    (0, b"\xce\xfa\xed\xfe", "macho"),
    (0, b"\xcf\xfa\xed\xfe", "macho"),
    # Mach-O universal binaries and Java classes share this number: both are blocked.
    (0, b"\xca\xfe\xba\xbe", "java-class"),
    (0, b"#!", "script"),
    (0, b"%PDF-", "pdf"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"PK\x07\x08", "zip"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"{\\rtf", "rtf"),
)


class FilePolicyError(ValueError):
    """The file is not accepted; ``str()`` says why in words a person can act on, and
    ``reason`` is a short stable label for the audit trail."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    """The settings' lists, lower-cased (extensions without their dot)."""

    blocked_extensions: frozenset[str]
    allowed_extensions: frozenset[str]  # empty: any extension not blocked
    blocked_types: frozenset[str]
    blocked_kinds: frozenset[str]

    @classmethod
    def of(
        cls,
        *,
        blocked_extensions: tuple[str, ...] | list[str],
        allowed_extensions: tuple[str, ...] | list[str],
        blocked_types: tuple[str, ...] | list[str],
        blocked_kinds: tuple[str, ...] | list[str],
    ) -> Policy:
        def norm(values: tuple[str, ...] | list[str]) -> frozenset[str]:
            return frozenset(v.strip().lower().lstrip(".") for v in values if v.strip())

        return cls(
            blocked_extensions=norm(blocked_extensions),
            allowed_extensions=norm(allowed_extensions),
            blocked_types=norm(blocked_types),
            blocked_kinds=norm(blocked_kinds),
        )


def extension_of(name: str) -> str:
    """The lower-case extension without its dot (``"report.tar.GZ"`` -> ``"gz"``), or ""."""
    stem, dot, extension = name.rpartition(".")
    return extension.lower().strip() if dot and stem.strip(" .") else ""


def sniff(head: bytes) -> Kind | None:
    """The kind the first bytes of a file announce, or None if no signature matches."""
    for offset, signature, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return KINDS[kind]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return KINDS["webp"]
    return None


def check_declared(policy: Policy, *, name: str, content_type: str) -> None:
    """Refuse a name or declared type the policy blocks; ``content_type`` is cleaned
    (``files.names.content_type_clean``). Raises ``FilePolicyError``."""
    extension = extension_of(name)
    if extension in policy.blocked_extensions:
        raise FilePolicyError(
            f"files of type .{extension} are not accepted here", reason="blocked extension"
        )
    if policy.allowed_extensions and extension not in policy.allowed_extensions:
        shown = f".{extension}" if extension else "without an extension"
        raise FilePolicyError(
            f"files {shown} are not accepted here", reason="extension not allowed"
        )
    if content_type in policy.blocked_types:
        raise FilePolicyError(
            f"files of type {content_type} are not accepted here", reason="blocked type"
        )


def check_content(policy: Policy, *, head: bytes, name: str, content_type: str) -> None:
    """Refuse content whose first bytes (``head``, at least :data:`SNIFF_BYTES` or the
    whole file) are a blocked kind, or disagree with the name's extension or the declared
    (cleaned) type. Raises ``FilePolicyError``."""
    kind = sniff(head)
    if kind is not None and kind.name in policy.blocked_kinds:
        raise FilePolicyError(
            "the file's content is a program or script, which is not accepted here",
            reason=f"blocked content {kind.name}",
        )
    extension = extension_of(name)
    claimed_by_extension = {k.name for k in KINDS.values() if extension in k.extensions}
    claimed_by_type = {k.name for k in KINDS.values() if content_type in k.types}
    found = kind.name if kind is not None else None
    if claimed_by_extension and found not in claimed_by_extension:
        raise FilePolicyError(
            f"the file is called .{extension} but its content is "
            f"{_described(found)}; send it with its true name",
            reason=f"content {found or 'unknown'} vs extension",
        )
    if content_type != DEFAULT_CONTENT_TYPE and kind is not None:
        if content_type not in kind.types:
            raise FilePolicyError(
                f"the file is declared {content_type} but its content is {_described(found)}",
                reason=f"content {found} vs type",
            )
    elif claimed_by_type and found not in claimed_by_type:
        raise FilePolicyError(
            f"the file is declared {content_type} but its content is {_described(found)}",
            reason="content unknown vs type",
        )


def _described(kind: str | None) -> str:
    return f"{kind.upper()} data" if kind else "not in that format"
