"""HLS (.m3u8) and DASH (.mpd) streams, and separate video and audio, made into one media
file by ffmpeg run as a subprocess that a2d-fetch's limits watch.

ffmpeg fetches a stream's playlist and segments itself: the deadline kills it, `--timeout`
is its read timeout (-rw_timeout), `--max-size` is watched on its output file (and given as
-fs); only http and https are allowed to it (-protocol_whitelist), so a playlist cannot make
it read local files. Its output is an unlinked temporary file, handed on as a SpilledBody
(read back by the consumer, one at a time), so a long video is never whole in memory here.
"""

import asyncio
import os
import re
import tempfile
import time
from urllib.parse import urlsplit

from .curl import SpilledBody
from .sources import SourceError

STREAM_SUFFIXES = (".m3u8", ".mpd")
PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy"  # what ffmpeg may open: no file:, no data:
WATCH_PERIOD = 0.2  # seconds between two looks at the output's size
# ffmpeg's messages, first match wins, as our error kinds.
_KINDS = (
    (re.compile(r"Server returned 5\d\d|HTTP error 5\d\d", re.I), "http_5xx"),
    (re.compile(r"Server returned 4\d\d|HTTP error 4\d\d|403 Forbidden|404 Not Found", re.I), "http_4xx"),
    (re.compile(r"Connection refused|No route to host|Network is unreachable", re.I), "connect"),
    (re.compile(r"timed out|Operation timed out", re.I), "timeout"),
    (re.compile(r"Connection reset|Broken pipe", re.I), "reset"),
    (re.compile(r"Failed to resolve|Name or service not known|getaddrinfo", re.I), "dns"),
    (re.compile(r"not on whitelist", re.I), "scheme_denied"),
    (re.compile(r"Invalid data|could not find codec|does not contain any stream|Output file #0 does not contain|"
                r"Output file does not contain|Unable to open resource|End of file", re.I), "invalid_reply"),
)


def is_stream(url: str) -> bool:
    """Whether the URL's path names an HLS playlist or a DASH manifest."""
    try:
        return urlsplit(url).path.lower().endswith(STREAM_SUFFIXES)
    except ValueError:
        return False


async def download(url: str, *, timeout: float, deadline: float, max_size: int, user_agent: str,
                   audio_only: bool = False, headers: dict | None = None) -> tuple[SpilledBody, str]:
    """The stream at `url` as one file (mp4; m4a with `audio_only`) and its extension.
    Raises SourceError with an error kind."""
    extension = "m4a" if audio_only else "mp4"
    request = [f"{name}: {value}\r\n" for name, value in (headers or {}).items() if name.lower() != "user-agent"]
    arguments = ["-protocol_whitelist", PROTOCOLS, "-rw_timeout", str(int(timeout * 1_000_000)),
                 "-user_agent", user_agent, *(["-headers", "".join(request)] if request else []), "-i", url,
                 *(["-vn"] if audio_only else []), "-c", "copy"]
    return await _ffmpeg(arguments, extension, deadline, max_size), extension


async def merge(parts: list[tuple[object, str]], *, deadline: float, max_size: int) -> tuple[SpilledBody, str]:
    """Separate video and audio (bodies, bytes or SpilledBody, with their extensions) as one mp4."""
    paths = []
    try:
        for body, extension in parts:
            paths.append(_to_file(body, extension))
        arguments = []
        for path in paths:
            arguments += ["-i", path]
        for index in range(len(paths)):
            arguments += ["-map", f"{index}:v?", "-map", f"{index}:a?"]
        return await _ffmpeg([*arguments, "-c", "copy"], "mp4", deadline, max_size), "mp4"
    finally:
        for path in paths:
            _remove(path)


def _to_file(body, extension: str) -> str:
    descriptor, path = tempfile.mkstemp(prefix="a2d-fetch-part-", suffix=f".{extension}")
    with os.fdopen(descriptor, "wb") as file:
        if isinstance(body, SpilledBody):
            for piece in body.pieces():
                file.write(piece)
            body.discard()
        else:
            file.write(body)
    return path


async def _ffmpeg(arguments: list[str], extension: str, deadline: float, max_size: int) -> SpilledBody:
    """Run ffmpeg writing one file; its size and time watched. The file, unlinked, as a body."""
    descriptor, output = tempfile.mkstemp(prefix="a2d-fetch-stream-", suffix=f".{extension}")
    os.close(descriptor)
    errors = tempfile.TemporaryFile(prefix="a2d-fetch-ffmpeg-")
    started = time.monotonic()
    process = None
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *arguments,
                "-fs", str(max_size + 1), "-f", "mp4", output,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=errors)
        except FileNotFoundError:
            raise SourceError("other", "streams need ffmpeg, which is not on the PATH") from None
        finished = asyncio.ensure_future(process.wait())
        while not finished.done():
            await asyncio.wait({finished}, timeout=WATCH_PERIOD)
            size = _size(output)
            if size > max_size:
                raise SourceError("too_large", f"the stream is over --max-size {max_size}")
            if not finished.done() and time.monotonic() - started > deadline:
                raise SourceError("timeout", f"deadline of {deadline:g}s exceeded (ffmpeg still reading)")
        size = _size(output)
        if process.returncode != 0 or size == 0:
            errors.seek(0)
            message = errors.read(4000).decode("utf-8", "replace").strip()
            raise SourceError(_kind(message), f"ffmpeg: {_last_line(message) or f'exit {process.returncode}'}")
        if size > max_size:
            raise SourceError("too_large", f"the stream is over --max-size {max_size}")
        file = open(output, "rb")  # noqa: SIM115 - handed to the SpilledBody, which closes it
        return SpilledBody(file, size)
    finally:
        errors.close()
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        _remove(output)  # (an open file stays readable)


def _kind(message: str) -> str:
    for pattern, kind in _KINDS:
        if pattern.search(message):
            return kind
    return "invalid_reply" if message else "other"


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
