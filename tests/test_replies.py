"""a2d-fetch, issue 13: replies that carry no file fail, URLs outside ASCII are requested as
browsers do, X-Robots-Tag scopes and `none`, and -j shared by the worker processes. Every
reply here is a real one, from the fault server (tests/servers.py) on 127.0.0.1."""

import asyncio
import json
import socket
import sys
import threading

import pytest

from any2dataset import record as rec
from any2dataset.fetch import FetchOptions, fetch
from conftest import ROOT, run_pipeline
from servers import FaultServer, body_for

sys.path.insert(0, str(ROOT / "benchmarks"))
import siminet  # noqa: E402


def fetch_all(urls, **options):
    options.setdefault("retries", 0)
    out = list(fetch([{"url": url, "row": i} for i, url in enumerate(urls)], FetchOptions(**options)))
    return sorted(out, key=lambda r: r["row"])


# --- replies that are not content


@pytest.mark.parametrize(
    "faults, kind, http_status",
    [
        ({"status": 204}, "no_content", 204),
        ({"status": 205}, "no_content", 205),
        ({"status": 304}, "no_content", 304),
        ({"size": 0}, "no_content", 200),
        ({"size": 0, "chunked": 1}, "no_content", 200),
        ({"status": 302}, "invalid_reply", 302),  # a redirect with no Location
        ({"status": 301}, "invalid_reply", 301),
        ({"status": 300}, "invalid_reply", 300),
    ],
)
def test_replies_without_a_file_fail_and_are_not_retried(http_server, faults, kind, http_status):
    path = f"empty/{kind}-{http_status}-{len(faults)}.png"
    [record] = fetch_all([http_server.url(path, **faults)], retries=2)
    assert record["status"] == "failed_to_download", record
    assert (record["error_kind"], record["http_status"]) == (kind, http_status)
    assert str(http_status) in record["error_message"] and "files" not in record
    assert len(http_server.requests_for(path)) == 1  # another try would get the same


@pytest.mark.parametrize(
    "faults, words",
    [({"raw": "http09"}, "no status line"), ({"raw": "garbage"}, "no status line"),
     ({"bighead": 200_000}, "reply headers over libcurl's limits"),
     ({"bighead": 90_000, "heads": 4}, "reply headers over libcurl's limits")],
)
def test_replies_that_are_not_http_are_invalid_reply(http_server, faults, words):
    [record] = fetch_all([http_server.url("notahttpreply.bin", **faults)])
    assert record["error_kind"] == "invalid_reply", record
    assert words in record["error_message"]


@pytest.mark.parametrize(
    "url, kind",
    [("data:image/png;base64,%%%%", "invalid_url"), ("data:image/png;base64,iVBO!!", "invalid_url"),
     ("data:;base64,Q", "invalid_url"), ("data:;base64,QQ==QQ==", "invalid_url"),
     ("data:image/png;base64,", "no_content"), ("data:,", "no_content")],
)
def test_data_urls_must_decode_and_carry_data(url, kind):
    [record] = fetch_all([url])
    assert (record["status"], record["error_kind"]) == ("failed_to_download", kind), record


def test_data_urls_decode_as_browsers_do():
    records = fetch_all(["data:;base64,QQ", "data:;base64,QU%20JD%0A", "data:;base64,aGVsbG8="])
    assert [r["files"]["payload.txt"] for r in records] == [b"A", b"ABC", b"hello"]


def test_an_empty_file_is_no_content(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    [record] = fetch_all([str(tmp_path / "empty.png")], allowed_schemes=frozenset({"http", "https", "file"}))
    assert record["error_kind"] == "no_content"


def test_the_new_kinds_are_known_to_the_record_format():
    assert {"no_content", "invalid_reply"} <= rec.ERROR_KINDS


# --- URLs outside ASCII


def test_paths_and_queries_outside_ascii_are_percent_encoded(http_server):
    urls = [http_server.base + "/intl/café.png", http_server.base + "/intl/😀/x.png?q=中文&r=%41",
            http_server.base + "/intl/a%20b/ü.png#frägment"]
    records = fetch_all(urls)
    assert [r["status"] for r in records] == ["success"] * 3, records
    assert [r["url"] for r in records] == urls  # the record keeps the URL it was given
    assert [r["final_url"] for r in records] == [None] * 3
    targets = [r["target"] for r in http_server.requests_for_prefix("/intl/")]
    assert sorted(targets) == ["/intl/%F0%9F%98%80/x.png?q=%E4%B8%AD%E6%96%87&r=%41",
                               "/intl/a%20b/%C3%BC.png", "/intl/caf%C3%A9.png"]
    assert records[0]["files"]["png"] == body_for("/intl/caf%C3%A9.png", 1000)


def test_an_idn_host_is_requested_in_idna(http_server):
    port = http_server.server_address[1]
    url = f"http://bücher.example:{port}/idn/pinned.png"
    for pin in (f"bücher.example:{port}:127.0.0.1", f"xn--bcher-kva.example:{port}:127.0.0.1"):
        [record] = fetch_all([url], resolve=(pin,))
        assert record["status"] == "success" and record["url"] == url, record
    seen = http_server.requests_for("idn/pinned.png")
    assert [r["headers"]["Host"] for r in seen] == [f"xn--bcher-kva.example:{port}"] * 2


@pytest.fixture
def name_server():
    """A DNS server on loopback: xn--bcher-kva.example and xn--ls8h.example are 127.0.0.1,
    169.254.169.254 for xn--mtadata-90a.example; other names do not exist."""
    names = {"xn--bcher-kva.example": "127.0.0.1", "xn--ls8h.example": "127.0.0.1",
             "xn--mtadata-90a.example": "169.254.169.254"}
    loop = asyncio.new_event_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started, holder = threading.Event(), {}

    def run():
        asyncio.set_event_loop(loop)
        holder["protocol"], transport = loop.run_until_complete(siminet.start_dns(names.get, "127.0.0.1", port))
        started.set()
        loop.run_forever()
        transport.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield holder["protocol"], f"127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_idn_hosts_are_looked_up_in_idna_and_their_addresses_checked(http_server, name_server):
    protocol, address = name_server
    port = http_server.server_address[1]
    urls = [f"http://bücher.example:{port}/idn/dns.png", f"http://💩.example:{port}/idn/emoji.png?q=ü",
            f"http://mötadata.example:{port}/idn/meta.png"]
    records = fetch_all(urls, dns_servers=(address,))
    assert [r["status"] for r in records[:2]] == ["success", "success"], records
    assert records[2]["error_kind"] == "address_denied"
    assert {"xn--bcher-kva.example", "xn--ls8h.example", "xn--mtadata-90a.example"} <= set(protocol.queries)
    assert [r["target"] for r in http_server.requests_for("idn/emoji.png")] == ["/idn/emoji.png?q=%C3%BC"]


@pytest.mark.parametrize(
    "url, kind",
    [("http://１６９.２５４.１６９.２５４/latest/meta-data/", "address_denied"),  # full-width digits
     ("http://169。254。169。254/latest/meta-data/", "address_denied"),  # ideographic full stops
     ("http://ｍｅｔａｄａｔａ.google.internal/computeMetadata/v1/", "address_denied"),
     ("http://ex％41mple.test/", "invalid_url"),  # a % escape once in IDNA
     ("http://a..ü.test/", "invalid_url"), ("http://ü.test:８０/", "invalid_url"),
     ("http://127.0.0.1/caf\x00é.png", "invalid_url"), ("http://127.0.0.1/\ud800.png", "invalid_url")],
)
def test_hosts_are_checked_after_their_idna_conversion(url, kind):
    [record] = fetch_all([url], timeout=1)
    assert record["error_kind"] == kind, record


def test_a_redirect_in_raw_utf8_is_followed(http_server):
    url = http_server.url("intl/moved.png", location="/intl/zielé/ü.png")
    [record] = fetch_all([url])
    assert record["status"] == "success", record
    assert record["final_url"] == http_server.base + "/intl/ziel%C3%A9/%C3%BC.png"
    assert http_server.requests_for("intl/ziel%C3%A9/%C3%BC.png")


# --- X-Robots-Tag


@pytest.mark.parametrize(
    "values, opted_out",
    [
        (["otherbot: noindex, any2dataset: noai"], True),  # the second part is for us
        (["otherbot: noindex, img2dataset: noimageai"], True),
        (["none"], True),  # noindex and nofollow
        (["any2dataset: none"], True),
        (["NoIndex"], True),
        (["noindex, otherbot: noai"], True),  # before any user agent: for everyone
        (["otherbot: noai", "any2dataset: noindex"], True),
        (["otherbot: none"], False),
        (["otherbot: noindex, otherbot2: noai"], False),
        (["any2dataset: nofollow, otherbot: noai"], False),
        (["unavailable_after: 25 Jun 2030 15:00:00 PST"], False),
        (["max-image-preview:none, nofollow"], False),
        (["all"], False),
    ],
)
def test_x_robots_tag_scopes_and_none(http_server, values, opted_out):
    [record] = fetch_all([http_server.url("robots/x.jpg", robots=values)])
    if opted_out:
        assert record["error_kind"] == "robots_optout", record
        assert record["http_status"] == 200
    else:
        assert record["status"] == "success", record


def test_none_counts_only_while_noindex_is_disallowed(http_server):
    [record] = fetch_all([http_server.url("robots/none.jpg", robots="none")], disallowed_directives=("noai",))
    assert record["status"] == "success"


# --- -j across worker processes


def _run_workers(tmp_path, urls, *options):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"url": url}) + "\n" for url in urls))
    result = run_pipeline(f"a2d-fetch -q {' '.join(options)} in.jsonl > out.jsonl", tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert sorted(r["url"] for r in out) == sorted(urls)
    return out


def _most_at_once(server, delay: float) -> int:
    """The most requests the server was holding at once within their `delay`, before its
    answer could reach the client: unlike `max_active` (which counts a handler until it
    returns, when the client may already have started its next request), never more than
    the client had in flight."""
    events = sorted((t, step) for r in server.requests for t, step in ((r["time"], 1), (r["time"] + 0.95 * delay, -1)))
    most = now = 0
    for _time, step in events:
        now += step
        most = max(most, now)
    return most


def test_a_short_list_uses_all_of_j_with_worker_processes(tmp_path):
    """One host, so one worker owns every URL: it may still have all of -j in flight (it had
    -j / workers)."""
    server = FaultServer().start()
    try:
        count, delay = 64, 1.0
        urls = [server.url(f"slow/{i}.bin", delay=delay) for i in range(count)]
        out = _run_workers(tmp_path, urls, "-w 2 -j 16 --no-ramp-up")
        assert all(r["status"] == "success" for r in out)
        assert 12 <= _most_at_once(server, delay) <= 16
        times = [r["time"] for r in server.requests]
        # 16 at a time: 4 rounds of `delay`; 8 at a time took 8 (the first request is at 0).
        assert max(times) - min(times) < 0.6 * count * delay / 8
    finally:
        server.stop()


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_j_bounds_the_downloads_in_flight_of_the_whole_command(tmp_path, concurrency):
    """Many hosts, spread over both workers: together they never pass -j."""
    server = FaultServer().start()
    try:
        port = server.server_address[1]
        hosts = [f"h{i}.test" for i in range(24)]
        delay = 0.3
        count = 48 if concurrency > 1 else 16  # (one at a time: 16 rounds of `delay` show it)
        urls = [f"http://{hosts[i % 24]}:{port}/many/{i}.bin?delay={delay}" for i in range(count)]
        pins = " ".join(f"--resolve {host}:{port}:127.0.0.1" for host in hosts)
        out = _run_workers(tmp_path, urls, f"-w 2 -j {concurrency} {pins}")
        assert all(r["status"] == "success" for r in out)
        assert concurrency // 2 <= _most_at_once(server, delay) <= concurrency
    finally:
        server.stop()


def test_workers_draw_from_one_pipe_of_slots():
    """Two workers' schedulers on one pipe of 4 tokens: one may use all 4 while the other is
    idle, never more; over its share it hands a freed token to the pipe, where the other
    finds it."""
    import os

    from any2dataset.fetch.hosts import SharedSlots, Slots

    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.write(write_fd, b"j" * 4)
    second_fd = os.dup(read_fd)

    async def main():
        # (each a process of its own in a2d-fetch: here one loop, so two descriptors of the pipe)
        one, other = (Slots(4, None, pool=SharedSlots(fd, write_fd), share=2) for fd in (read_fd, second_fd))
        for i in range(4):
            await asyncio.wait_for(one.acquire(f"h{i}", i), 1)
        waiting = asyncio.ensure_future(other.acquire("x", 0))
        late = asyncio.ensure_future(one.acquire("h9", 9))
        await asyncio.sleep(0.05)
        assert not waiting.done() and not late.done()  # all 4 in use
        one.release("h0", None)  # 3 still in flight, over its share of 2: the token goes to the pipe
        await asyncio.sleep(0.05)
        assert waiting.done() + late.done() == 1  # whoever read it first; not both
        first = one if late.done() else other
        first.release("h9" if late.done() else "x", None)
        await asyncio.wait_for(asyncio.gather(waiting, late), 1)
        assert one.used + other.used == 4

    try:
        asyncio.run(main())
    finally:
        for fd in (read_fd, second_fd, write_fd):
            os.close(fd)
