"""a2d-fetch: download every record's URL."""

import os
import sys
import time

import click

from .. import record as rec
from ..cli import command, common_options, input_paths_argument, on_error_option, output_option
from ..fetch import (
    DEFAULT_DISALLOWED_DIRECTIVES,
    DEFAULT_PER_HOST,
    DEFAULT_SCHEMES,
    DEFAULT_USER_AGENT,
    DOWN_SECONDS,
    HASH_NAMES,
    RAMP_START,
    SOURCES,
    FetchOptions,
)
from ..fetch.dns import parse_server
from ..fetch.engine import needs_fetch
from ..fetch.processes import Tally, fetch_in_workers
from ..streams import RecordReader, RecordWriter
from ..workers import available_cores


def _headers(pairs: tuple[str, ...], from_env: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, colon, value = pair.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(f"{pair!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()
    for pair in from_env:
        name, colon, variable = pair.partition(":")
        variable = variable.strip()
        if not colon or not name.strip() or not variable:
            raise click.BadParameter(f"{pair!r} is not 'Name: VARIABLE'", param_hint="--header-env")
        if variable not in os.environ:
            raise click.BadParameter(f"environment variable {variable} is not set", param_hint="--header-env")
        headers[name.strip()] = os.environ[variable]
    return headers


def _verify(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    column, colon, algorithm = text.partition(":")
    if not colon or algorithm not in HASH_NAMES or not column:
        raise click.BadParameter(f"{text!r}: want COLUMN:ALGORITHM with one of {', '.join(HASH_NAMES)}",
                                 param_hint="--verify-hash")
    return column, algorithm


class _Progress:
    """Done, rate, MB/s, success ratio and the commonest error kinds, on stderr."""

    def __init__(self, console):
        from tqdm import tqdm

        self.bar = tqdm(desc=console.name, unit="rec", file=sys.stderr, dynamic_ncols=True)
        self.started = time.monotonic()
        self.shown = 0.0

    def show(self, tally: Tally) -> None:
        now = time.monotonic()
        if now - self.shown < 0.5 and tally.records - self.bar.n < 1000:
            return
        self.shown = now
        self.bar.update(tally.records - self.bar.n)
        top = " ".join(f"{kind}:{count}" for kind, count in tally.error_kinds.most_common(3))
        self.bar.set_postfix_str(f"{tally.bytes / 1e6 / max(now - self.started, 1e-6):.1f} MB/s, "
                                 f"{100 * tally.successes / max(tally.records, 1):.0f}% ok {top}".rstrip(),
                                 refresh=False)

    def close(self, tally: Tally) -> None:
        self.shown = 0.0
        self.show(tally)
        self.bar.close()


class ByteSize(click.ParamType):
    """A size in bytes, with an optional K, M or G suffix (powers of 1024)."""

    name = "size"
    UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        number, unit = (text[:-1], text[-1]) if text[-1:] in self.UNITS and text[-1:] else (text, "")
        try:
            size = int(float(number) * self.UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a size such as 512M or 2G", param, ctx)
        if size < 1:
            self.fail(f"{value!r}: a size must be positive", param, ctx)
        return size


@command(
    "a2d-fetch",
    "download the URL of every record",
    "Download the url of every record and print the records with their payload, or with the "
    "reason they failed (status, error_kind, error_message). Every input record comes out once, "
    "in the order downloads finish (or in input order with --ordered).",
    "a2d-read urls.txt | a2d-fetch -j 128 --timeout 10 > records.jsonl",
)
@input_paths_argument
@click.option("-j", "--concurrency", default=64, show_default=True, type=click.IntRange(1),
              help="Downloads in flight at once.")
@click.option("--per-host", default=DEFAULT_PER_HOST, show_default=True, type=click.IntRange(0),
              help="Downloads in flight to one host at most; 0: no cap and no ramp-up.")
@click.option("--ramp-up/--no-ramp-up", default=True, show_default=True,
              help=f"Start each host at {RAMP_START} downloads in flight, one more per answer up to --per-host.")
@click.option("--host-down-after", "down_after", default=3, show_default=True, type=click.IntRange(0), metavar="N",
              help=f"After N requests in a row to a host get no answer, its waiting downloads fail at once "
                   f"(host_down) for {DOWN_SECONDS:g} s; 0: never.")
@click.option("--lookahead", type=click.IntRange(0), metavar="N",
              help="Records read ahead while their host waits its turn [default: 2 x -j, at least 1024].")
@click.option("--dns-server", "dns_servers", multiple=True, metavar="ADDRESS[:PORT]",
              help="Ask this name server (repeatable) [default: those of /etc/resolv.conf].")
@click.option("--system-dns", is_flag=True,
              help="Resolve through the system (getaddrinfo, a thread per lookup) instead of asking name servers.")
@click.option("--dns-cache", default=100_000, show_default=True, type=click.IntRange(1), metavar="NAMES",
              help="Host names remembered, found or not.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Seconds to connect, and at most between two reads.")
@click.option("--deadline", default=60.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Seconds for one attempt, redirects and body included.")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(0),
              help="Further attempts after a timeout, connection error, 5xx, 408 or 429 (never another 4xx).")
@click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Seconds: before retry k, wait a random time up to backoff * 2^k (capped at 30 s).")
@click.option("--max-retry-after", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Longest Retry-After (seconds) to honour; longer ones are cut to this.")
@click.option("--max-size", default=100 * 1024 * 1024, show_default=True,
              type=click.IntRange(1, rec.MAX_PAYLOAD_BYTES),
              help="Largest body in bytes, at most 768 MiB (a record is one JSON line); larger ones fail as "
                   "too_large without being read whole.")
@click.option("--body-memory", type=ByteSize(), metavar="SIZE",
              help="Bytes of bodies kept in memory, downloading or waiting for the next stage (512M, 2G); a "
                   "body over its share (SIZE / (-j + waiting records)) goes to a temporary file in TMPDIR "
                   "as it arrives [default: an eighth of the machine's memory, at most 1G].")
@click.option("--max-redirects", default=10, show_default=True, type=click.IntRange(0), help="Redirects to follow.")
@click.option("--hash", "hash_name", type=click.Choice([*HASH_NAMES, "none"]), default="sha256", show_default=True,
              help="Hash of the downloaded bytes, stored under its name.")
@click.option("--verify-hash", metavar="COLUMN:ALGORITHM",
              help="Compare the download's hash with this column; a mismatch fails as hash_mismatch.")
@click.option("--user-agent", default=DEFAULT_USER_AGENT, show_default=True, help="User-Agent header.")
@click.option("--user-agent-token", metavar="TOKEN",
              help="Add '(compatible; TOKEN)' to the User-Agent; X-Robots-Tag rules scoped to TOKEN then apply.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Send this header (repeatable).")
@click.option("--header-env", "headers_env", multiple=True, metavar="'NAME: VARIABLE'",
              help="Send a header whose value is in an environment variable, so secrets stay out of ps.")
@click.option("--location-trusted", is_flag=True,
              help="Send the --header and --header-env headers to redirect targets on other hosts too "
                   "(by default only to the first URL's host, as curl).")
@click.option("--disallowed-header-directives", default=",".join(DEFAULT_DISALLOWED_DIRECTIVES), show_default=True,
              metavar="A,B,...", help="X-Robots-Tag directives that refuse a sample ('' to respect none).")
@click.option("--allow-scheme", "schemes", multiple=True, metavar="SCHEME",
              help="Also fetch this scheme (s3, gs, hf, file, ...; "
                   f"default only {', '.join(sorted(DEFAULT_SCHEMES))}).")
@click.option("--allow-address", "networks", multiple=True, metavar="CIDR",
              help="Allow these link-local or cloud-metadata addresses, refused by default.")
@click.option("--resolve", "pinned", multiple=True, metavar="HOST:PORT:ADDRESS",
              help="Connect to ADDRESS for HOST:PORT instead of asking DNS (as curl --resolve).")
@click.option("--proxy", metavar="URL",
              help="Send requests through this proxy [default: the environment's http_proxy, https_proxy, "
                   "all_proxy, no_proxy, as curl]. Target names are still resolved and checked here.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Trust the certificate authorities in this PEM file instead of the system's.")
@click.option("--retry-failed", is_flag=True,
              help="Fetch again records that already failed to download (by default they pass through).")
@click.option("--ordered/--unordered", default=False, show_default=True,
              help="Keep the input order on output (a slow download then holds back those after it; implies "
                   "-w 1), or write each record as soon as it is done (the default: downloads finish out of order).")
@click.option("--source", type=click.Choice(SOURCES), default="streams", show_default=True,
              help="Which URLs are more than a file: streams, .m3u8 and .mpd URLs, made one mp4 by ffmpeg; and "
                   "through yt-dlp (the ytdlp extra): auto, also pages of the sites its extractors know (testing "
                   "them costs ~9 ms of CPU per new host and first path segment); pages, every URL whose name is "
                   "not a media file (video2dataset's rule); yt-dlp, every URL (its generic extractor reads any "
                   "page's <video>); direct: none, every URL downloaded as it is.")
@click.option("--download-size", default=360, show_default=True, type=click.IntRange(0), metavar="HEIGHT",
              help="Pages: the smallest video at least HEIGHT tall (video2dataset's download_size); 0: any.")
@click.option("--download-audio-rate", default=44100, show_default=True, type=click.IntRange(0), metavar="HZ",
              help="Pages: the smallest audio of at least HZ (video2dataset's download_audio_rate); 0: any.")
@click.option("--audio-only", is_flag=True, help="Pages and streams: the audio only (m4a).")
@click.option("--ytdlp-format", metavar="FORMAT",
              help="Pages: this yt-dlp format string instead of the one --download-size and "
                   "--download-audio-rate make.")
@click.option("--yt-metadata", is_flag=True,
              help="Pages: the platform's info (title, description, duration, uploader, upload_date, view_count, "
                   "tags, chapters, ...) in a yt_meta_dict field, as video2dataset writes it.")
@click.option("--subtitles", "subtitle_langs", multiple=True, metavar="LANG",
              help="Pages: subtitles in this language (repeatable) as a LANG.vtt payload, as cues in "
                   "yt_meta_dict.subtitles and as text in subtitles.LANG.")
@click.option("--subtitles-first", is_flag=True,
              help="Only the first language of --subtitles that the page has (video2dataset's writesubtitles: first).")
@click.option("--auto-subtitles", is_flag=True, help="Pages: automatic captions where there are no subtitles.")
@click.option("--extract-workers", default=8, show_default=True, type=click.IntRange(1), metavar="N",
              help="Pages read by yt-dlp at once (threads); their media downloads are not counted here.")
@click.option("-w", "--workers", default=0, show_default=True, type=click.IntRange(0),
              help="Worker processes; 0: one per core, 1 runs in this process. Use 1 when fanning out several "
                   "pipelines per machine.")
@on_error_option
@output_option()
@common_options
def main(inputs, workers, on_error, output, console, **params):
    options = fetch_options(**params)
    if options.source in ("yt-dlp", "pages"):
        from ..fetch.ytdlp import require

        require()  # a missing extra: one clear message before any input is read
    console.waiting_on_terminal(inputs)
    reader = RecordReader(inputs, on_error=on_error)
    workers = 1 if options.ordered else (workers or available_cores())
    progress = _Progress(console) if console.progress else None
    tally = Tally()
    passed = Tally()  # records a2d-fetch did not fetch: with a payload already, or settled
    try:
        if workers > 1 and output == "-" and _real_stdout():
            tally = _fetch_in_processes(reader, options, workers, progress, passed)
        else:
            _fetch_here(_noting_passes(reader, options, passed), options, output, progress, tally)
    finally:
        if progress:
            progress.close(tally)
    console.skipped(reader)
    fetched_kinds = tally.error_kinds - passed.error_kinds
    kinds = ", ".join(f"{kind} {count}" for kind, count in fetched_kinds.most_common())
    downloaded = tally.successes - passed.successes
    failed = tally.records - passed.records - downloaded
    console.info(f"{tally.records} records: {downloaded} downloaded, {failed} failed" + (f" ({kinds})" if kinds else "")
                 + (f", {passed.records} passed through untouched" if passed.records else ""))


def _noting_passes(items, options, passed: Tally, record_of=lambda item: item):
    """The input as it is, with the records a2d-fetch will pass on untouched counted in `passed`."""
    for item in items:
        record = record_of(item)
        if not needs_fetch(record, options.retry_failed):
            passed.add(record)
        yield item


def fetch_options(*, concurrency, per_host, ramp_up, down_after, lookahead, dns_servers, system_dns, dns_cache, timeout,
                  deadline, retries, backoff, max_retry_after, max_size, max_redirects, hash_name, verify_hash,
                  user_agent, user_agent_token, headers, headers_env,
                  disallowed_header_directives, schemes, networks, pinned, insecure, ca_bundle, retry_failed, ordered,
                  proxy=None, location_trusted=False, body_memory=None, source="streams", download_size=360,
                  download_audio_rate=44100, audio_only=False, ytdlp_format=None, yt_metadata=False,
                  subtitle_langs=(), subtitles_first=False, auto_subtitles=False, extract_workers=8,
                  **_other) -> FetchOptions:
    """The command's parameters (as click parsed them) as FetchOptions; the all-in-one uses it too."""
    try:
        import ipaddress

        for network in networks:
            ipaddress.ip_network(network, strict=False)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--allow-address") from None
    for server in dns_servers:
        try:
            parse_server(server)
        except ValueError:
            raise click.BadParameter(f"{server!r} is not ADDRESS or ADDRESS:PORT", param_hint="--dns-server") from None
    return FetchOptions(
        concurrency=concurrency, per_host=per_host, ramp_up=ramp_up, down_after=down_after, lookahead=lookahead,
        dns_servers=tuple(dns_servers), system_dns=system_dns, dns_cache=dns_cache, timeout=timeout, deadline=deadline,
        retries=retries,
        backoff=backoff, max_retry_after=max_retry_after, max_size=max_size, max_redirects=max_redirects,
        hash=None if hash_name == "none" else hash_name, verify_hash=_verify(verify_hash),
        user_agent=user_agent, user_agent_token=user_agent_token, headers=_headers(headers, headers_env),
        disallowed_directives=tuple(d.strip() for d in disallowed_header_directives.split(",") if d.strip()),
        allowed_schemes=DEFAULT_SCHEMES | {s.lower() for s in schemes}, allowed_networks=networks, resolve=pinned,
        insecure=insecure, ca_bundle=ca_bundle, retry_failed=retry_failed, ordered=ordered, proxy=proxy or None,
        location_trusted=location_trusted, body_memory=body_memory, source=source, download_size=download_size,
        download_audio_rate=download_audio_rate, audio_only=audio_only, ytdlp_format=ytdlp_format or None,
        yt_metadata=yt_metadata, subtitle_langs=tuple(subtitle_langs), all_subtitle_langs=not subtitles_first,
        auto_subtitles=auto_subtitles, extract_workers=extract_workers,
    )


def _real_stdout() -> bool:
    """Worker processes write to our stdout descriptor: only when there is one (not in tests
    that capture output in-process)."""
    try:
        sys.stdout.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _fetch_here(reader, options, output, progress, tally: Tally) -> None:
    from ..fetch import fetch

    with RecordWriter(output) as out:
        for record in fetch(reader, options):
            out.write(record)
            tally.add(record)
            if progress:
                progress.show(tally)


def _fetch_in_processes(reader, options, workers, progress, passed: Tally) -> Tally:
    latest = [Tally()]

    def on_tally(tally: Tally) -> None:
        latest[0] = tally
        if progress:
            progress.show(tally)

    sys.stdout.flush()
    pairs = _noting_passes(reader.pairs(), options, passed, record_of=lambda pair: pair[1])
    fetch_in_workers(pairs, options, workers, on_tally)
    return latest[0]


if __name__ == "__main__":
    main()
