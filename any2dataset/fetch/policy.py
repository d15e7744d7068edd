"""What a fetch outcome means: error kinds for exceptions and statuses, file extensions, hashes."""

import asyncio
import errno
import hashlib
import mimetypes
import re
from urllib.parse import urlsplit

import aiohttp
import xxhash

from .. import __version__

DEFAULT_USER_AGENT = f"any2dataset/{__version__}"
ALLOWED_SCHEMES = frozenset({"http", "https"})
HASHES = {
    "md5": hashlib.md5,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "xxh64": xxhash.xxh64,
}

_URL_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,6})$")
# Content types that say nothing about the file: fall back to the URL's suffix.
_VAGUE_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary"})
_CANONICAL_EXTENSION = {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff", "htm": "html", "mpga": "mp3"}


def url_problem(url) -> tuple[str, str] | None:
    """(error_kind, message) when a URL cannot be fetched at all, else None."""
    if not url or not isinstance(url, str):
        return "invalid_url", "no URL"
    try:
        parts = urlsplit(url)
    except ValueError as error:
        return "invalid_url", f"invalid URL: {error}"
    scheme = parts.scheme.lower()
    if not scheme:
        return "invalid_url", f"invalid URL (no scheme): {url[:200]}"
    if scheme not in ALLOWED_SCHEMES:
        return "scheme_denied", f"scheme {scheme}: is not fetched (allowed: {', '.join(sorted(ALLOWED_SCHEMES))})"
    if not parts.hostname:
        return "invalid_url", f"invalid URL (no host): {url[:200]}"
    return None


def http_error(status: int, reason: str | None) -> tuple[str, str]:
    kind = "http_5xx" if status >= 500 else "http_4xx"
    return kind, f"HTTP {status} {reason or ''}".rstrip()


def exception_kind(error: BaseException) -> tuple[str, str]:
    """(error_kind, message) for an exception raised while fetching."""
    message = str(error) or type(error).__name__
    # Order matters: aiohttp's classes inherit from each other and from OSError.
    if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout", "timed out" if not str(error) else f"timed out: {error}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "dns", message
    if isinstance(error, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return "tls", message
    if isinstance(error, aiohttp.TooManyRedirects):
        return "too_many_redirects", "too many redirects"
    if isinstance(error, (aiohttp.NonHttpUrlClientError, aiohttp.NonHttpUrlRedirectClientError)):
        return "scheme_denied", message
    if isinstance(error, (aiohttp.InvalidURL, ValueError)):
        return "invalid_url", message
    if isinstance(error, aiohttp.ClientPayloadError):
        return "truncated", f"body ended early: {message}"
    if isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionResetError)):
        return "reset", message
    if isinstance(error, aiohttp.ClientConnectorError):
        return "connect", message
    if isinstance(error, OSError) and error.errno in (errno.ECONNRESET, errno.EPIPE):
        return "reset", message
    return "other", f"{type(error).__name__}: {message}"


def mime_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def extension_for(url: str, mime: str) -> str:
    """File extension from the Content-Type, else the URL's suffix, else `bin`."""
    extension = None
    if mime not in _VAGUE_TYPES:
        guessed = mimetypes.guess_extension(mime, strict=False)
        if guessed:
            extension = guessed[1:]
    if extension is None:
        match = _URL_EXTENSION.search(urlsplit(url).path)
        extension = match.group(1).lower() if match else "bin"
    return _CANONICAL_EXTENSION.get(extension, extension)
