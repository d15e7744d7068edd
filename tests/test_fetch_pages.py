"""a2d-fetch on video pages (yt-dlp's generic extractor) and streams (HLS through ffmpeg), all
against servers on 127.0.0.1: media, metadata (yt_meta_dict) and subtitles, and failures
(stalled, broken, too large) as records with error kinds within the deadline.

yt-dlp's generic extractor reads pages on 127.0.0.1 as any other (no option needed); it
finds a <video> tag's source and <track kind="subtitles">, but the page's description only
in JSON-LD (a schema.org VideoObject), so the metadata test serves one."""

import asyncio
import json
import shutil
import subprocess
import time

import pytest
from click.testing import CliRunner

from any2dataset.errors import MissingExtra
from any2dataset.fetch import FetchOptions, fetch, streams, ytdlp
from servers import serve_folder

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
needs_ytdlp = pytest.mark.skipif(not ytdlp.available(), reason="needs yt-dlp (the ytdlp extra)")

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello there\n\n00:00:01.000 --> 00:00:02.500\nGeneral Kenobi\n"
LD = {"@context": "https://schema.org", "@type": "VideoObject", "name": "Clip of a test",
      "description": "A test clip with a tone", "duration": "PT3S", "uploadDate": "2024-05-06",
      "keywords": "test,tone", "author": {"@type": "Person", "name": "Tester"},
      "interactionStatistic": {"@type": "InteractionCounter", "interactionType": {"@type": "WatchAction"},
                               "userInteractionCount": 42}}


def ffmpeg(*arguments):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *arguments], check=True)


def streams_of(payload: bytes, folder) -> list[str]:
    path = folder / "probe.mp4"
    path.write_bytes(payload)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder of pages, a clip, an HLS stream of it; served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("site")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-f", "lavfi", "-i", "sine=frequency=440",
           "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(root / "clip.mp4"))
    (root / "hls").mkdir()
    ffmpeg("-i", str(root / "clip.mp4"), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
           str(root / "hls" / "index.m3u8"))
    (root / "dash").mkdir()
    ffmpeg("-i", str(root / "clip.mp4"), "-map", "0", "-c", "copy", "-f", "dash", "-seg_duration", "1",
           str(root / "dash" / "manifest.mpd"))
    (root / "clip.en.vtt").write_text(VTT)
    (root / "page.html").write_text('<html><head><title>My clip</title></head><body><video src="clip.mp4">'
                                    '<track kind="subtitles" srclang="en" src="clip.en.vtt"></video></body></html>')
    (root / "hlspage.html").write_text('<html><head><title>HLS clip</title></head><body>'
                                       '<video src="hls/index.m3u8"></video></body></html>')
    (root / "empty.html").write_text("<html><head><title>x</title></head><body>no video</body></html>")
    with serve_folder(root) as base:
        ld = {**LD, "contentUrl": f"{base}/clip.mp4"}  # (yt-dlp takes it as it is: an absolute URL)
        (root / "ld.html").write_text('<html><head><title>LD</title><script type="application/ld+json">'
                                      f'{json.dumps(ld)}</script></head><body>hello</body></html>')
        yield root, base


def run(urls, **options):
    options = {"retries": 0, "source": "yt-dlp", **options}
    records = [{"url": url, "row": i} for i, url in enumerate(urls)]
    started = time.monotonic()
    out = sorted(fetch(records, FetchOptions(**options)), key=lambda r: r["row"])
    return out, time.monotonic() - started


@needs_ytdlp
def test_a_page_with_a_video_tag_gives_the_video_and_its_subtitles(site, tmp_path):
    root, base = site
    [record], _ = run([f"{base}/page.html"], subtitle_langs=("en",))
    assert record["status"] == "success", record
    assert record["files"]["mp4"] == (root / "clip.mp4").read_bytes()  # downloaded as it is, by our client
    assert record["files"]["en.vtt"] == VTT.encode()
    assert record["mime"] == "video/mp4" and record["size"] == len(record["files"]["mp4"]) and record["sha256"]
    cues = record["yt_meta_dict"]["subtitles"]["en"]
    assert cues == [{"start": "00:00:00.000", "end": "00:00:01.000", "lines": ["Hello there"]},
                    {"start": "00:00:01.000", "end": "00:00:02.500", "lines": ["General Kenobi"]}]
    assert record["subtitles"] == {"en": "Hello there\nGeneral Kenobi"}
    assert record["yt_meta_dict"]["info"] is None  # not asked for


@needs_ytdlp
def test_a_page_s_metadata_lands_in_yt_meta_dict(site):
    _, base = site
    [record], _ = run([f"{base}/ld.html"], yt_metadata=True)
    assert record["status"] == "success", record
    info = record["yt_meta_dict"]["info"]
    assert info["title"] == "Clip of a test" and info["description"] == "A test clip with a tone"
    assert info["duration"] == 3 and info["uploader"] == "Tester" and info["upload_date"] == "20240506"
    assert info["view_count"] == 42 and info["tags"] == ["test", "tone"]
    assert not set(ytdlp.DROPPED_INFO) & set(info)
    json.dumps(record["yt_meta_dict"])  # JSON-safe, for the .json and the metadata parquet


@needs_ytdlp
def test_an_hls_stream_as_a_page_and_as_a_playlist_becomes_one_mp4(site, tmp_path):
    _, base = site
    for source in ("yt-dlp", "auto"):  # auto: a .m3u8 goes straight to ffmpeg
        records, _ = run([f"{base}/hlspage.html", f"{base}/hls/index.m3u8"], source=source)
        for record in records:
            if source == "auto" and record["url"].endswith(".html"):
                assert "yt_meta_dict" not in record  # auto leaves an unknown site's page to the direct path
                continue
            assert record["status"] == "success", record
            assert streams_of(record["files"]["mp4"], tmp_path) == ["audio", "video"]


def test_a_dash_manifest_becomes_one_mp4(site, tmp_path, monkeypatch):
    _, base = site
    monkeypatch.setattr(ytdlp, "available", lambda: False)  # (ffmpeg alone)
    [record, page], _ = run([f"{base}/dash/manifest.mpd", f"{base}/page.html"], source=FetchOptions().source)
    assert page["status"] == "success" and list(page["files"]) == ["html"]  # by default a page is a file
    assert record["status"] == "success", record
    assert streams_of(record["files"]["mp4"], tmp_path) == ["audio", "video"]
    duration = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                               str(tmp_path / "probe.mp4")], capture_output=True, text=True, check=True).stdout
    assert abs(float(duration) - 3) < 0.5


def test_a_direct_playlist_needs_no_ytdlp(site, tmp_path, monkeypatch):
    _, base = site
    monkeypatch.setattr(ytdlp, "available", lambda: False)
    [record], _ = run([f"{base}/hls/index.m3u8"], source="auto", audio_only=True)
    assert record["status"] == "success", record
    assert streams_of(record["files"]["m4a"], tmp_path) == ["audio"]
    assert record["mime"].startswith("audio/")


@needs_ytdlp
def test_broken_pages_fail_with_kinds(site):
    _, base = site
    records, _ = run([f"{base}/missing.html", f"{base}/empty.html", "http://127.0.0.1:9/closed.html"])
    assert [r["error_kind"] for r in records] == ["http_4xx", "no_content", "connect"]
    assert all(r["status"] == "failed_to_download" and r["error_message"].startswith("yt-dlp") for r in records)


@needs_ytdlp
def test_a_stalled_page_fails_within_the_deadline(http_server):
    url = http_server.url("slow/page.html", stall=1, size=200_000, ctype="text/html")
    [record], seconds = run([url], timeout=1, deadline=3)
    assert record["status"] == "failed_to_download" and record["error_kind"] == "timeout", record
    assert seconds < 3 + 2


def test_stalled_and_broken_streams_fail_within_the_deadline(site, http_server, tmp_path):
    root, base = site
    segment = (root / "hls" / "index0.ts").read_bytes()
    (root / "stalled.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n" + http_server.url("seg/a.ts", stall=1, size=len(segment))
        + "\n#EXT-X-ENDLIST\n")
    (root / "gone.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nnothere0.ts\n#EXT-X-ENDLIST\n")
    (root / "garbage.m3u8").write_text("this is not a playlist\n")
    records, seconds = run([f"{base}/stalled.m3u8", f"{base}/gone.m3u8", f"{base}/garbage.m3u8",
                            http_server.url("hang/live.m3u8", stall=1, size=5000)],
                           source="auto", timeout=1, deadline=4)
    kinds = [r["error_kind"] for r in records]
    assert all(r["status"] == "failed_to_download" and r["error_message"] for r in records), records
    assert kinds[2] == "invalid_reply" and kinds[3] in ("timeout", "invalid_reply"), records
    assert kinds[0] in ("timeout", "invalid_reply") and kinds[1] in ("http_4xx", "invalid_reply"), records
    assert seconds < 4 + 2


@needs_ytdlp
def test_max_size_holds_for_pages_and_streams(site):
    _, base = site
    records, _ = run([f"{base}/page.html", f"{base}/hls/index.m3u8"], max_size=10_000)
    assert [r["error_kind"] for r in records] == ["too_large", "too_large"], records


def test_separate_video_and_audio_are_merged(site, tmp_path):
    root, _ = site
    video, audio = tmp_path / "v.mp4", tmp_path / "a.m4a"
    ffmpeg("-i", str(root / "clip.mp4"), "-an", "-c", "copy", str(video))
    ffmpeg("-i", str(root / "clip.mp4"), "-vn", "-c", "copy", str(audio))
    body, extension = asyncio.run(streams.merge([(video.read_bytes(), "mp4"), (audio.read_bytes(), "m4a")],
                                                deadline=20, max_size=10 << 20))
    assert extension == "mp4" and streams_of(body.take(), tmp_path) == ["audio", "video"]


def test_format_strings_follow_video2dataset_s_controls():
    assert ytdlp.format_string(FetchOptions()) == ("(wv*[height>=360][ext=mp4]/bv*[ext=mp4]/bv*)+"
                                                   "(wa[asr>=44100][ext=m4a]/ba[ext=m4a]/ba)/"
                                                   "w[height>=360][ext=mp4]/b[ext=mp4]/b")
    assert ytdlp.format_string(FetchOptions(audio_only=True, download_audio_rate=0)) == "ba[ext=m4a]/ba/b"
    assert ytdlp.format_string(FetchOptions(ytdlp_format="18")) == "18"


def test_vtt_cues_drop_repeats_and_karaoke_as_video2dataset():
    text = ("WEBVTT\nKind: captions\n\n00:00:01.000 --> 00:00:02.000 align:start\nhello\n\n"
            "00:00:02.000 --> 00:00:03.000\nhello\n<b>world</b>\n\n00:00:03.000 --> 00:00:04.000\n<c>x</c>\n")
    assert ytdlp.vtt_cues(text) == [{"start": "00:00:01.000", "end": "00:00:02.000", "lines": ["hello"]},
                                    {"start": "00:00:02.000", "end": "00:00:03.000", "lines": ["world"]}]


def test_streams_and_error_kinds_are_recognised():
    assert streams.is_stream("http://h/a/b.M3U8?x=1") and streams.is_stream("https://h/m.mpd")
    assert not streams.is_stream("http://h/a.mp4")
    assert ytdlp.error_kind("ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Busy") == "http_5xx"
    assert ytdlp.error_kind("Unsupported URL: http://x") == "no_content"
    assert streams._kind("Server returned 404 Not Found") == "http_4xx"


@needs_ytdlp
def test_auto_knows_platform_pages_without_asking_the_network():
    matcher = ytdlp.PageMatcher()
    assert matcher("https://www.youtube.com/watch?v=QW3-5OuWn4M") and matcher("https://vimeo.com/12345")
    assert not matcher("http://127.0.0.1:1/images/cat")


def test_a_missing_extra_is_one_clear_message(monkeypatch):
    import sys

    from any2dataset.commands import fetch as fetch_command

    monkeypatch.setitem(sys.modules, "yt_dlp", None)
    with pytest.raises(MissingExtra, match=r"any2dataset\[ytdlp\]"):
        list(fetch([{"url": "http://127.0.0.1:9/page"}], FetchOptions(source="yt-dlp")))
    result = CliRunner().invoke(fetch_command.main, ["--source", "yt-dlp"], input='{"url": "http://127.0.0.1:9/"}\n')
    assert result.exit_code != 0 and "pip install 'any2dataset[ytdlp]'" in result.output + str(result.exception)


def test_video2dataset_s_yt_args_become_fetch_options(monkeypatch):
    from any2dataset import video_all_in_one as v2d

    monkeypatch.setattr(v2d, "ytdlp_available", lambda: True)
    settings = v2d.yt_settings({"download_size": 720, "download_audio_rate": 16000,
                                "yt_metadata_args": {"writesubtitles": "first", "subtitleslangs": ["es", "en"],
                                                     "writeautomaticsub": True, "get_info": True}}, {"audio": "m4a"})
    assert settings == {"download_size": 720, "download_audio_rate": 16000, "audio_only": True, "source": "pages",
                        "yt_metadata": True, "subtitle_langs": ("es", "en"), "all_subtitle_langs": False,
                        "auto_subtitles": True}
    assert FetchOptions(**settings).source == "pages"
    with pytest.raises(Exception, match="yt_args: unknown format"):
        v2d.yt_settings({"format": "18"}, {"video": "mp4"})
    monkeypatch.setattr(v2d, "ytdlp_available", lambda: False)
    assert v2d.yt_settings({}, {"video": "mp4"})["source"] == "streams"  # direct links need no extra
