"""What a fetch outcome means: error kinds, what is retried and how long to wait,
robots opt-outs, which file a reply carries (from filetypes) and hashes."""

import asyncio
import email.utils
import errno
import hashlib
import random
import re
import time
from urllib.parse import urlsplit

import xxhash

from .. import filetypes

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


def extension_and_mime(url: str, content_type: str | None, body: bytes) -> tuple[str, str | None]:
    """File extension and media type: from a specific Content-Type, else the bytes, else the URL."""
    mime = filetypes.mime_type(content_type)
    if mime not in filetypes.VAGUE_MIMES:
        guessed = filetypes.extension_of_mime(mime)
        if guessed:
            return filetypes.download_extension(guessed), mime
    sniffed = filetypes.sniff(body)
    if sniffed is not None:
        return sniffed
    match = _URL_EXTENSION.search(urlsplit(url).path)
    extension = filetypes.download_extension(match.group(1).lower()) if match else "bin"
    return extension, mime or filetypes.mime_of_name(f"x.{extension}")
