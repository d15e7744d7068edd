"""What a fetch outcome means: error kinds, what is retried and how long to wait,
robots opt-outs, file extensions and hashes."""

import asyncio
import email.utils
import errno
import hashlib
import mimetypes
import random
import re
import time
from urllib.parse import urlsplit

import xxhash


HASHES = {
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "xxh64": xxhash.xxh64,
}
# Failures worth another try; a 4xx other than 429 (and 408) never is.
RETRYABLE_KINDS = frozenset({"timeout", "connect", "reset", "truncated", "dns", "http_5xx"})
RETRYABLE_STATUSES = frozenset({408, 429})

# X-Robots-Tag: directives written `name: value`, not user agents; a user agent's product token;
# directives that stand for others.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_USER_AGENT = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_IMPLIED = {"none": ("noindex", "nofollow")}

_URL_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,6})$")
# Content types that say nothing about the file: look at the bytes, then the URL.
_VAGUE_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary",
                          "application/x-download", "application/force-download"})
_CANONICAL_EXTENSION = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tif": "tiff", "htm": "html", "mpga": "mp3"}
# Magic numbers of the files datasets are made of: (offset, bytes, extension, mime).
_MAGIC = [
    (0, b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (0, b"GIF87a", "gif", "image/gif"),
    (0, b"GIF89a", "gif", "image/gif"),
    (0, b"BM", "bmp", "image/bmp"),
    (0, b"II*\x00", "tiff", "image/tiff"),
    (0, b"MM\x00*", "tiff", "image/tiff"),
    (0, b"%PDF-", "pdf", "application/pdf"),
    (0, b"fLaC", "flac", "audio/flac"),
    (0, b"OggS", "ogg", "audio/ogg"),
    (0, b"ID3", "mp3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "webm", "video/webm"),
    (0, b"PK\x03\x04", "zip", "application/zip"),
    (0, b"\x1f\x8b", "gz", "application/gzip"),
]
_RIFF = {b"WEBP": ("webp", "image/webp"), b"WAVE": ("wav", "audio/wav"), b"AVI ": ("avi", "video/x-msvideo")}
_ISO_BRANDS = {b"avif": ("avif", "image/avif"), b"heic": ("heic", "image/heic"), b"qt  ": ("mov", "video/quicktime"),
               b"M4A ": ("m4a", "audio/mp4")}


def http_error(status: int, reason: str | None) -> tuple[str, str]:
    kind = "http_5xx" if status >= 500 else "http_4xx"
    return kind, f"HTTP {status} {reason or ''}".rstrip()


def not_content(status: int | None, reason: str | None, size: int, location: bool) -> tuple[str, str] | None:
    """(error_kind, message) for a reply under 400 that carries no file: 204, 205 and 304 (and any
    other empty body) are no_content; a 1xx or 3xx that is not a redirect followed (no Location,
    or a status such as 300 that browsers do not follow) is invalid_reply. None: content."""
    line = f"HTTP {status} {reason or ''}".rstrip()
    if status is None or status < 200:
        return "invalid_reply", f"{line}: not a final reply"
    if status in (204, 205, 304):
        return "no_content", f"{line}: the reply has no content"
    if 300 <= status < 400:
        why = "not a redirect that is followed (301, 302, 303, 307, 308)" if location else "a redirect with no Location"
        return "invalid_reply", f"{line}: {why}"
    if size == 0:
        return "no_content", f"{line}: the body is empty"
    return None


def retryable(kind: str, http_status: int | None) -> bool:
    return kind in RETRYABLE_KINDS or http_status in RETRYABLE_STATUSES


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def robots_optout(values: list[str], tokens: frozenset[str], disallowed: frozenset[str]) -> str | None:
    """The X-Robots-Tag value that opts out, if any. A value is a comma-separated list of
    directives; a part may start with a user agent and a colon (`otherbot: noindex,
    any2dataset: noai`), which scopes the directives after it, up to the next user agent, to
    that agent: they count only when it is one of our tokens. Directives before any user agent
    are for all. `none` means noindex and nofollow."""
    for value in values:
        ours = True  # no user agent named yet: for everyone
        for part in value.split(","):
            name, colon, rest = part.partition(":")
            name = name.strip().lower()
            if colon and name not in _VALUED_DIRECTIVES and _USER_AGENT.fullmatch(name):
                ours = name in tokens
                part = rest
            if not ours:
                continue
            directive = part.strip().lower()
            if directive in disallowed or not disallowed.isdisjoint(_IMPLIED.get(directive, ())):
                return value.strip()
    return None


def exception_kind(error: BaseException) -> tuple[str, str]:
    """(error_kind, message) for an unexpected exception while fetching a record."""
    if isinstance(error, asyncio.TimeoutError):
        return "timeout", "timed out"
    if isinstance(error, OSError) and error.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset", str(error)
    return "other", f"{type(error).__name__}: {error}"


def mime_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff(body: bytes) -> tuple[str, str] | None:
    """(extension, mime) from a file's first bytes, for the common dataset formats."""
    head = body[:32]
    for offset, magic, extension, mime in _MAGIC:
        if head.startswith(magic, offset):
            return extension, mime
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], ("mp4", "video/mp4"))
    return None


def extension_and_mime(url: str, content_type: str | None, body: bytes) -> tuple[str, str | None]:
    """File extension and media type: from a specific Content-Type, else the bytes, else the URL."""
    mime = mime_of(content_type)
    if mime not in _VAGUE_TYPES:
        guessed = mimetypes.guess_extension(mime, strict=False)
        if guessed:
            return _canonical(guessed[1:]), mime
    sniffed = sniff(body)
    if sniffed is not None:
        return sniffed
    match = _URL_EXTENSION.search(urlsplit(url).path)
    extension = _canonical(match.group(1).lower()) if match else "bin"
    return extension, mime or mimetypes.guess_type(f"x.{extension}")[0]


def _canonical(extension: str) -> str:
    return _CANONICAL_EXTENSION.get(extension, extension)
