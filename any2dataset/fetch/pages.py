"""Video pages (through yt-dlp) and streams (through ffmpeg) inside a2d-fetch's engine.

A page is read by yt-dlp's extract_info(download=False) in a bounded pool of threads
(--extract-workers), holding its host's slot; the formats it chose are then downloaded by
the engine's own HTTP client (curl.py: --max-size, --timeout, retries, per-host slots as
for any URL), or by ffmpeg for HLS and DASH (streams.py), and separate video and audio are
merged by ffmpeg. So no thread waits on a download, and the deadline covers the whole
attempt: extraction, downloads and merge. The platform's metadata and subtitles come as
video2dataset gives them (`yt_meta_dict`), subtitles also as LANG.vtt payloads and text.

A direct .m3u8 or .mpd URL goes to ffmpeg without yt-dlp.
"""

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from .. import filetypes
from .. import record as rec
from . import policy, streams, ytdlp
from .sources import SourceError

_STREAM_PROTOCOLS = {"m3u8", "m3u8_native", "http_dash_segments", "http_dash_segments_generator"}
# A URL whose file name has one of these extensions is a file, downloaded directly in `auto`,
# and never costs a look through yt-dlp's extractors.
_FILE_EXTENSIONS = frozenset({*filetypes.IMAGE_EXTENSIONS, *filetypes.VIDEO_EXTENSIONS, *filetypes.AUDIO_EXTENSIONS,
                              "pdf", "txt", "json", "csv", "zip", "tar", "gz", "bin", "npy"})


class Media:
    """Page and stream URLs for one engine run. `get(url, position, deadline)` is the engine's
    download with its retries, giving (Outcome, final URL, retries); `slots` its host slots."""

    def __init__(self, options, get, slots):
        self.options = options
        self.get = get
        self.slots = slots
        self.matcher = None
        self.extract = None
        self.pool = None
        if options.source in ("yt-dlp", "pages"):
            ytdlp.require()  # a missing extra is one clear error before any work
        self.use_ytdlp = options.source not in ("direct", "streams") and ytdlp.available()

    def wants(self, url: str) -> bool:
        """Whether this URL is a stream or a page (else the engine downloads it directly)."""
        if self.options.source == "direct":
            return False
        if streams.is_stream(url):
            return True
        if self.options.source == "streams":
            return False
        if self.options.source == "yt-dlp":
            return True
        if not self.use_ytdlp or self._named_file(url):
            return False
        if self.options.source == "pages":
            return True
        if self.matcher is None:
            self.matcher = ytdlp.PageMatcher()
        return self.matcher(url)

    def _named_file(self, url: str) -> bool:
        try:
            path = urlsplit(url).path
        except ValueError:
            return True
        name = path.rsplit("/", 1)[-1]
        return "." in name and name.rsplit(".", 1)[1].lower() in _FILE_EXTENSIONS

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def fetch(self, record: dict, url: str, position: int) -> dict:
        """The record with its media (and metadata, subtitles), or its failure; retried as the
        engine retries, each attempt within the deadline."""
        options = self.options
        attempt, seconds = 0, 0.0
        while True:
            started = time.monotonic()
            found: dict = {}  # what the attempt learnt before it failed (metadata)
            try:
                result = await asyncio.wait_for(self._attempt(record, url, position, found), options.deadline)
                error = None
            except SourceError as failure:
                error = failure
            except asyncio.TimeoutError:
                error = SourceError("timeout", f"deadline of {options.deadline:g}s exceeded")
            seconds += time.monotonic() - started
            if error is None:
                result["fetch_seconds"] = round(seconds, 4)
                result["retries"] = attempt
                return result
            if attempt >= options.retries or not policy.retryable(error.kind, None):
                record.update(found)
                record["fetch_seconds"] = round(seconds, 4)
                record["retries"] = attempt
                return rec.failure(record, "failed_to_download", error.kind, str(error))
            await asyncio.sleep(policy.backoff(attempt, options.backoff, options.max_backoff))
            attempt += 1

    async def _attempt(self, record: dict, url: str, position: int, found: dict) -> dict:
        options = self.options
        deadline = time.monotonic() + options.deadline
        if streams.is_stream(url) and options.source != "yt-dlp":
            body, extension = await self._stream(url, position, deadline)
            return _succeeded(record, body, extension, {})
        info = await self._info(url, position)
        if options.yt_metadata or options.subtitle_langs:
            found["yt_meta_dict"] = {"info": ytdlp.meta_info(info) if options.yt_metadata else None,
                                     "subtitles": None}
        parts = []
        done_manifests = set()
        for chosen in ytdlp.chosen_formats(info):
            protocol = chosen.get("protocol") or "https"
            if protocol in ("http", "https"):
                parts.append((await self._download(chosen["url"], position, deadline), chosen.get("ext") or "mp4"))
            elif protocol in _STREAM_PROTOCOLS:
                source = chosen.get("manifest_url") if protocol.startswith("http_dash") else chosen["url"]
                if source in done_manifests:
                    continue  # (a DASH manifest's video and audio come from one run of ffmpeg)
                done_manifests.add(source)
                parts.append(await self._stream(source, position, deadline, chosen.get("http_headers")))
            else:
                raise SourceError("other", f"yt-dlp chose a {protocol} format, which a2d-fetch does not download")
        if len(parts) > 1:
            body, extension = await streams.merge(parts, deadline=_left(deadline), max_size=options.max_size)
        else:
            body, extension = parts[0]
        payloads = {}
        if options.subtitle_langs:
            subtitles, texts = {}, {}
            for language, address in ytdlp.subtitle_urls(info, options.subtitle_langs, options.all_subtitle_langs):
                vtt = await self._download(address, position, deadline)
                vtt = vtt if isinstance(vtt, bytes) else vtt.take()
                payloads[f"{language}.vtt"] = vtt
                subtitles[language] = ytdlp.vtt_cues(vtt.decode("utf-8", "replace"))
                texts[language] = ytdlp.cue_text(subtitles[language])
            found["yt_meta_dict"]["subtitles"] = subtitles or None
            found["subtitles"] = texts or None
        record.update(found)
        return _succeeded(record, body, extension, payloads, info.get("webpage_url"))

    async def _info(self, url: str, position: int) -> dict:
        """yt-dlp's info for the page, in the pool, holding the page's host slot."""
        if self.extract is None:
            self.extract = ytdlp.Extractor(self.options)
            self.pool = ThreadPoolExecutor(max_workers=self.options.extract_workers, thread_name_prefix="a2d-ytdlp")
        async with self._host_slot(url, position):
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.extract, url)

    @contextlib.asynccontextmanager
    async def _host_slot(self, url: str, position: int):
        """One of the URL's host's slots, held while yt-dlp or ffmpeg talks to it; how it went
        counts for the host as a download's outcome does."""
        key = _host_key(url)
        await self.slots.acquire(key, position)
        kind = "other"
        try:
            yield
            kind = None
        except SourceError as error:
            kind = error.kind
            raise
        finally:
            self.slots.release(key, kind, answered=kind not in ("connect", "dns", "timeout", "other"))

    async def _download(self, url: str, position: int, deadline: float):
        outcome, _final, _retries = await self.get(url, position, _left(deadline))
        if outcome.kind is not None:
            raise SourceError(outcome.kind, f"{outcome.message} ({_short(url)})")
        return outcome.body

    async def _stream(self, url: str, position: int, deadline: float, headers=None):
        async with self._host_slot(url, position):
            return await streams.download(url, timeout=self.options.timeout, deadline=_left(deadline),
                                          max_size=self.options.max_size, user_agent=self.options.full_user_agent(),
                                          audio_only=self.options.audio_only, headers=headers)


def _succeeded(record: dict, body, extension: str, payloads: dict, final_url: str | None = None) -> dict:
    files = {rec.payload_name(extension, record): body}
    files.update(payloads)
    record[rec.FILES] = files
    record["_body"] = body  # for the hash, in the consumer's thread
    record["status"] = "success"
    record["error_kind"] = None
    record["error_message"] = None
    record["mime"] = filetypes.mime_of_name(f"x.{extension}")
    record["size"] = len(body)
    if final_url and final_url != record.get("url"):
        record["final_url"] = final_url
    return record


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or (443 if parts.scheme.lower() == 'https' else 80)}"


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
