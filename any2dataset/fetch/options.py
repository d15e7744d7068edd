"""a2d-fetch's options and defaults, kept apart from the engine so that a command can
read them without importing the network engine (a parent of worker processes never needs it)."""

import os
from dataclasses import dataclass, field

from .. import __version__
from ..errors import UsageProblem

TOOL_TOKEN = "any2dataset"
DEFAULT_USER_AGENT = f"{TOOL_TOKEN}/{__version__}"
# Opt-outs addressed to img2dataset are honoured too: it is the tool sites know.
ROBOTS_TOKENS = frozenset({TOOL_TOKEN, "img2dataset"})
DEFAULT_DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
DEFAULT_SCHEMES = frozenset({"http", "https", "data"})
HASH_NAMES = ("md5", "sha256", "sha512", "xxh64")
# Politeness: at most 16 requests in flight to one host (browsers open 6 connections per
# host over HTTP/1.1; HTTP/2 multiplexes), reached from 2 by one more per answer.
DEFAULT_PER_HOST = 16
RAMP_START = 2
DOWN_SECONDS = 60.0
# Which URLs go through yt-dlp (fetch/pages.py): `auto`, those of a site one of its extractors
# knows; `pages`, every URL whose name is not a media file (video2dataset's rule); `yt-dlp`,
# every URL (its generic extractor reads any page); `direct`, none.
SOURCES = ("streams", "auto", "pages", "yt-dlp", "direct")


@dataclass
class FetchOptions:
    concurrency: int = 64
    per_host: int = DEFAULT_PER_HOST  # requests in flight to one host; 0: no cap (and no ramp-up)
    ramp_up: bool = True  # a host starts at RAMP_START requests in flight, one more per answer
    lookahead: int | None = None  # records read ahead for hosts that must wait; default: lookahead_default()
    down_after: int = 3  # requests in a row without an answer that put a host down for DOWN_SECONDS; 0: never
    dns_servers: tuple[str, ...] = ()  # ADDRESS[:PORT]; default: /etc/resolv.conf's
    system_dns: bool = False  # let libcurl resolve through the system (getaddrinfo, a thread per lookup)
    dns_cache: int = 100_000  # host names remembered, positive and negative
    timeout: float = 10.0  # to connect, and between two reads
    deadline: float = 60.0  # one attempt, body included
    max_size: int = 100 * 1024 * 1024
    max_redirects: int = 10
    retries: int = 2
    backoff: float = 1.0  # first backoff ceiling in seconds, doubled per retry
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    user_agent: str = DEFAULT_USER_AGENT
    user_agent_token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    disallowed_directives: tuple[str, ...] = DEFAULT_DISALLOWED_DIRECTIVES
    insecure: bool = False
    ca_bundle: str | None = None  # PEM file of the certificate authorities to trust; default: the system's
    hash: str | None = "sha256"
    verify_hash: tuple[str, str] | None = None  # (column, algorithm)
    allowed_schemes: frozenset[str] = DEFAULT_SCHEMES
    allowed_networks: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()  # HOST:PORT:ADDRESS, as curl's --resolve
    proxy: str | None = None  # else the environment's (http_proxy, https_proxy, all_proxy, no_proxy), as curl
    location_trusted: bool = False  # send --header headers to redirect targets on other hosts too
    retry_failed: bool = False
    ordered: bool = False
    buffer: int | None = None  # finished records waiting for the consumer; default: buffer_default()
    body_memory: int | None = None  # bytes of bodies in memory, in flight or waiting; default: body_memory_default()
    # In a worker process of `a2d-fetch -w N`, `concurrency` is its share of -j; the whole -j
    # (`shared_concurrency`) is a pipe of tokens (`slot_pipe`: read and write descriptors) that
    # every worker draws from, so one worker may use all of -j when the others are idle.
    shared_concurrency: int | None = None
    slot_pipe: tuple[int, int] | None = None
    # Video pages (yt-dlp) and streams (ffmpeg), with video2dataset's yt_args: fetch/pages.py.
    source: str = "streams"
    download_size: int = 360  # the smallest video at least this tall (video2dataset's download_size); 0: any
    download_audio_rate: int = 44100  # the smallest audio at least this rate (download_audio_rate); 0: any
    audio_only: bool = False
    ytdlp_format: str | None = None  # a yt-dlp format string, instead of the one the three above make
    yt_metadata: bool = False  # the page's info (title, description, ...) into yt_meta_dict
    subtitle_langs: tuple[str, ...] = ()  # subtitles in these languages, as LANG.vtt payloads and text
    all_subtitle_langs: bool = True  # every language of subtitle_langs found, or only the first
    auto_subtitles: bool = False  # automatic captions too, where no subtitles are
    extract_workers: int = 8  # threads running yt-dlp's extraction at once

    def __post_init__(self):
        if self.source not in SOURCES:
            raise UsageProblem(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")

    def in_flight_limit(self) -> int:
        """The most requests this process may have in flight."""
        return self.shared_concurrency if self.slot_pipe else self.concurrency

    def buffer_default(self) -> int:
        """Finished records that may wait for a slow consumer before no new download starts
        (each holds its body): an eighth of -j, from 16 to 128."""
        return self.buffer if self.buffer is not None else max(16, min(128, self.concurrency // 8))

    def body_memory_default(self) -> int:
        """The byte budget for bodies in memory: an eighth of the machine's memory, at most 1 GiB."""
        return self.body_memory if self.body_memory is not None else min(1 << 30, _physical_memory() // 8)

    def memory_per_transfer(self) -> int:
        """Bytes of one body kept in memory (in flight, or finished and waiting); the rest of a
        larger body goes to a temporary file. At least 256 KiB: most images stay in memory."""
        return max(256 << 10, self.body_memory_default() // (self.concurrency + self.buffer_default()))

    def lookahead_default(self) -> int:
        """Records that may wait for their host (or DNS) beyond those in flight: enough that
        a few capped hosts do not starve the others."""
        return self.lookahead if self.lookahead is not None else max(1024, 2 * self.concurrency)

    def full_user_agent(self) -> str:
        if self.user_agent_token:
            return f"{self.user_agent} (compatible; {self.user_agent_token})"
        return self.user_agent

    def robots_tokens(self) -> frozenset[str]:
        extra = {self.user_agent_token.lower()} if self.user_agent_token else set()
        return ROBOTS_TOKENS | extra


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
