"""What a2d-fetch asks of yt-dlp (the optional `ytdlp` extra): which URLs are video pages, the
page's info and chosen formats (extract_info without downloading), its metadata and subtitles
as video2dataset gives them (`yt_meta_dict`).

yt-dlp only reads the page (and a stream's playlist); the media itself is downloaded by
a2d-fetch's engine (fetch/pages.py), so its limits hold.
"""

import re
import threading
from urllib.parse import urlsplit

from ..errors import MissingExtra
from .sources import SourceError

EXTRA = "ytdlp"
# Fields video2dataset drops from the info it writes (get_yt_meta): large, or written apart.
DROPPED_INFO = ("subtitles", "requested_formats", "formats", "thumbnails", "automatic_captions", "http_headers",
                "requested_subtitles", "_version")
MATCH_CACHE = 100_000  # (host, first path segment) verdicts remembered
# yt-dlp's messages, first match wins, as our error kinds.
_KINDS = (
    (re.compile(r"HTTP Error 5\d\d"), "http_5xx"),
    (re.compile(r"HTTP Error 4\d\d"), "http_4xx"),
    (re.compile(r"timed out", re.I), "timeout"),
    (re.compile(r"Connection refused|No route to host|Network is unreachable", re.I), "connect"),
    (re.compile(r"Connection reset|Remote end closed|RemoteDisconnected|IncompleteRead", re.I), "reset"),
    (re.compile(r"Name or service not known|getaddrinfo|nodename nor servname", re.I), "dns"),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|SSL", re.I), "tls"),
    (re.compile(r"Unsupported URL|No video formats|Requested format is not available|no suitable", re.I),
     "no_content"),
)


def require():
    """yt_dlp, or MissingExtra naming the extra."""
    try:
        import yt_dlp
    except ImportError:
        raise MissingExtra("video pages (a2d-fetch --source yt-dlp)", EXTRA, "yt-dlp") from None
    return yt_dlp


def available() -> bool:
    try:
        require()
    except MissingExtra:
        return False
    return True


class PageMatcher:
    """Whether one of yt-dlp's extractors, other than the generic one, takes a URL. Testing
    all ~1,750 costs ~9 ms, so verdicts are kept per host and first path segment (a site's
    pages share theirs: youtube.com/watch, vimeo.com/...)."""

    def __init__(self):
        from yt_dlp.extractor import gen_extractor_classes

        self.classes = [c for c in gen_extractor_classes() if c.ie_key() != "Generic"]
        self.verdicts: dict[tuple[str, str], bool] = {}
        self.lock = threading.Lock()

    def __call__(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        where = ((parts.hostname or "").lower(), parts.path.lstrip("/").split("/", 1)[0])
        verdict = self.verdicts.get(where)
        if verdict is None:
            verdict = any(c.suitable(url) for c in self.classes)
            with self.lock:
                if len(self.verdicts) >= MATCH_CACHE:
                    self.verdicts.clear()
                self.verdicts[where] = verdict
        return verdict


def format_string(options) -> str:
    """The yt-dlp format to choose, from video2dataset's controls: the smallest video at least
    `download_size` tall (mp4 first) with the smallest audio of at least `download_audio_rate`
    (m4a first), or one file that has both; audio only with `audio_only`."""
    if options.ytdlp_format:
        return options.ytdlp_format
    rate = f"[asr>={options.download_audio_rate}]" if options.download_audio_rate > 0 else ""
    audio = f"wa{rate}[ext=m4a]/ba[ext=m4a]/ba" if rate else "ba[ext=m4a]/ba"
    if options.audio_only:
        return f"{audio}/b"
    height = f"[height>={options.download_size}]" if options.download_size > 0 else ""
    video = f"wv*{height}[ext=mp4]/bv*[ext=mp4]/bv*" if height else "bv*[ext=mp4]/bv*"
    whole = f"w{height}[ext=mp4]/b[ext=mp4]/b" if height else "b[ext=mp4]/b"
    return f"({video})+({audio})/{whole}"


class Extractor:
    """yt-dlp's extract_info(download=False) with our options; one YoutubeDL per thread (run in
    a bounded pool by fetch/pages.py)."""

    def __init__(self, options):
        self.yt_dlp = require()
        self.params = {
            "quiet": True, "no_warnings": True, "noprogress": True, "skip_download": True, "noplaylist": True,
            "socket_timeout": options.timeout, "format": format_string(options),
            "nocheckcertificate": options.insecure, "logger": _Quiet(),
        }
        if options.proxy:
            self.params["proxy"] = options.proxy
        if options.subtitle_langs:
            self.params.update(writesubtitles=True, subtitleslangs=list(options.subtitle_langs),
                               writeautomaticsub=options.auto_subtitles)
        self.local = threading.local()

    def __call__(self, url: str) -> dict:
        """The page's info, JSON-safe. Raises SourceError with an error kind."""
        ydl = getattr(self.local, "ydl", None)
        if ydl is None:
            ydl = self.local.ydl = self.yt_dlp.YoutubeDL(dict(self.params))
        try:
            info = ydl.extract_info(url, download=False)
        except self.yt_dlp.utils.DownloadError as error:
            message = re.sub(r"^ERROR: ", "", str(error))
            raise SourceError(error_kind(message), f"yt-dlp: {message}") from None
        except Exception as error:  # an extractor's own bug must not end the run
            raise SourceError("other", f"yt-dlp: {type(error).__name__}: {error}") from None
        if not info:
            raise SourceError("no_content", "yt-dlp found nothing on the page")
        if info.get("_type") == "playlist":
            entries = [entry for entry in info.get("entries") or () if entry]
            if not entries:
                raise SourceError("no_content", "yt-dlp found an empty playlist")
            info = entries[0]  # (noplaylist: a page with several videos gives its first)
        return ydl.sanitize_info(info)


def error_kind(message: str) -> str:
    for pattern, kind in _KINDS:
        if pattern.search(message):
            return kind
    return "other"


def chosen_formats(info: dict) -> list[dict]:
    """The formats yt-dlp chose to download: video and audio apart, or one."""
    formats = info.get("requested_formats") or ([info] if info.get("url") else [])
    if not formats:
        raise SourceError("no_content", "yt-dlp chose no format to download")
    return formats


def meta_info(info: dict) -> dict:
    """The info as video2dataset writes it in yt_meta_dict: without formats, thumbnails, subtitles."""
    return {name: value for name, value in info.items() if name not in DROPPED_INFO}


def subtitle_urls(info: dict, languages, all_languages: bool) -> list[tuple[str, str]]:
    """(language, url) of the subtitles yt-dlp chose, in the order of `languages` (only the
    first found unless `all_languages`)."""
    requested = info.get("requested_subtitles") or {}
    found = []
    for language in languages:
        entry = requested.get(language)
        if entry and entry.get("url"):
            found.append((language, entry["url"]))
            if not all_languages:
                break
    return found


_TIMING = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
_TAG = re.compile(r"<[^>]+>")


def vtt_cues(text: str) -> list[dict]:
    """WebVTT as video2dataset's sub_to_dict gives it (dedupe on): [{start, end, lines}], cues
    with karaoke timing (<c>) and lines repeating the one before left out."""
    cues, previous = [], None
    for block in re.split(r"\r?\n\s*\r?\n", text.replace("\ufeff", "")):
        lines = block.splitlines()
        for index, line in enumerate(lines):
            timing = _TIMING.match(line)
            if timing:
                body = lines[index + 1:]
                if any("<c>" in entry for entry in body):
                    break
                kept = []
                for entry in body:
                    entry = _TAG.sub("", entry).strip()
                    if entry and entry != previous:
                        kept.append(entry)
                    if entry:
                        previous = entry
                if kept:
                    cues.append({"start": timing.group(1), "end": timing.group(2), "lines": kept})
                break
    return cues


def cue_text(cues: list[dict]) -> str:
    return "\n".join(line for cue in cues for line in cue["lines"])


class _Quiet:
    """yt-dlp's messages: errors come back as exceptions; nothing goes to our stdout."""

    def debug(self, message):
        pass

    info = warning = error = debug
