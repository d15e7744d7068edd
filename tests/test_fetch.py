"""a2d-fetch against the fault-injecting server: every fault gives the right error_kind."""

import hashlib
import time

import pytest

from any2dataset.fetch import FetchOptions, fetch
from servers import body_for


def fetch_all(urls, **options):
    options.setdefault("retries", 0)
    records = [{"url": url, "row": i} for i, url in enumerate(urls)]
    out = list(fetch(records, FetchOptions(**options)))
    return sorted(out, key=lambda r: r["row"])


def test_success_carries_payload_and_facts(http_server):
    [record] = fetch_all([http_server.url("img/cat.jpg", size=5000)])
    body = body_for("/img/cat.jpg", 5000)
    assert record["status"] == "success"
    assert record["files"] == {"jpg": body}
    assert record["mime"] == "image/jpeg"
    assert record["size"] == 5000 and record["http_status"] == 200
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["error_kind"] is None and record["row"] == 0


@pytest.mark.parametrize(
    "faults, kind, http_status",
    [
        ({"status": 404}, "http_4xx", 404),
        ({"status": 403}, "http_4xx", 403),
        ({"status": 429, "retry_after": 1}, "http_4xx", 429),
        ({"status": 500}, "http_5xx", 500),
        ({"status": 503}, "http_5xx", 503),
        ({"reset": 1}, "reset", None),
        ({"truncate": 100, "size": 1000}, "truncated", None),
        ({"loop": 1}, "too_many_redirects", None),
    ],
)
def test_faults_become_failure_records(http_server, faults, kind, http_status):
    [record] = fetch_all([http_server.url(f"fault/{kind}-{http_status}.bin", **faults)])
    assert record["status"] == "failed_to_download"
    assert record["error_kind"] == kind
    assert record["error_message"]
    assert "files" not in record
    assert record.get("http_status") == http_status


def test_redirects_are_followed_and_the_final_url_recorded(http_server):
    url = http_server.url("moved/a.png", redirect=2)
    [record] = fetch_all([url])
    assert record["status"] == "success"
    assert record["final_url"] == http_server.url("moved/a.png", redirect=0)
    assert record["files"]["png"] == body_for("/moved/a.png", 1000)


def test_a_stalled_body_ends_with_timeout_not_a_hang(http_server):
    started = time.monotonic()
    [record] = fetch_all([http_server.url("stall.bin", stall=1, size=100000)], timeout=0.5, deadline=20)
    assert record["error_kind"] == "timeout" and "no data for 0.5s" in record["error_message"]
    assert time.monotonic() - started < 8  # the read timeout, not the 20 s deadline, ended it


def test_a_drip_feed_is_cut_by_the_deadline(http_server):
    # Each byte arrives within the read timeout, so only the total deadline can stop it.
    started = time.monotonic()
    [record] = fetch_all([http_server.url("drip.bin", drip=0.05, size=1000)], timeout=5, deadline=1)
    assert record["error_kind"] == "timeout" and "deadline" in record["error_message"]
    assert time.monotonic() - started < 8  # the drip alone would take 50 s


def test_slow_first_byte_beyond_timeout(http_server):
    [record] = fetch_all([http_server.url("slow.bin", delay=2)], timeout=0.3)
    assert record["error_kind"] == "timeout"


@pytest.mark.parametrize("faults", [{}, {"chunked": 1}])
def test_max_size_holds_with_and_without_content_length(http_server, faults):
    [record] = fetch_all([http_server.url("huge.bin", size=300000, **faults)], max_size=100000)
    assert record["error_kind"] == "too_large"


def test_connection_refused_is_connect():
    from servers import free_port

    [record] = fetch_all([f"http://127.0.0.1:{free_port()}/x"])
    assert record["error_kind"] == "connect"


@pytest.mark.parametrize(
    "url, kind",
    [(None, "invalid_url"), ("", "invalid_url"), ("not a url", "invalid_url"),
     ("http://", "invalid_url"), ("ftp://127.0.0.1/a", "scheme_denied"),
     ("file:///etc/passwd", "scheme_denied")],
)
def test_unfetchable_urls_fail_without_a_request(url, kind):
    [record] = fetch_all([url])
    assert record["error_kind"] == kind


def test_every_record_comes_out_exactly_once_under_concurrency(http_server):
    urls = []
    for i in range(300):
        faults = [{}, {"status": 404}, {"truncate": 10, "size": 100}, {"delay": 0.2}][i % 4]
        urls.append(http_server.url(f"many/{i}.bin", **faults))
    out = fetch_all(urls, concurrency=32)
    assert [r["row"] for r in out] == list(range(300))
    assert [r["status"] == "success" for r in out] == [i % 4 in (0, 3) for i in range(300)]


def test_records_with_a_payload_pass_through_untouched(http_server):
    record = {"url": http_server.url("never-fetched.bin"), "files": {"bin": b"kept"}, "status": "success"}
    [out] = list(fetch([dict(record)]))
    assert out == record
    assert not http_server.requests_for("never-fetched.bin")


def test_user_agent_is_sent(http_server):
    from any2dataset import __version__

    fetch_all([http_server.url("ua.bin")])
    [request] = http_server.requests_for("ua.bin")
    assert request["headers"]["User-Agent"] == f"any2dataset/{__version__}"


@pytest.mark.parametrize("lookahead", [0, 20])
def test_a_slow_consumer_bounds_what_is_read_ahead(http_server, lookahead):
    """Backpressure: with 4 slots, 4 buffered and the lookahead for waiting hosts, input is
    not read further ahead of the consumer."""
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield {"url": http_server.url(f"bp/{lookahead}/{i}.bin", size=10)}

    results = fetch(source(), FetchOptions(concurrency=4, buffer=4, lookahead=lookahead))
    next(results)
    time.sleep(0.5)
    # 8 slots and the lookahead, plus the one the consumed record freed, plus one read and waiting.
    assert len(pulled) <= 4 + 4 + lookahead + 1 + 1
    assert len(pulled) >= 4 + 4 + lookahead
    assert len(list(results)) == 99


# Retries, backoff and Retry-After, as the server saw them.

def test_5xx_is_retried_with_backoff_until_it_succeeds(http_server):
    url = http_server.url("retry/flaky.bin", fail_times=2, status=503)
    [record] = fetch_all([url], retries=3, backoff=0.05)
    assert record["status"] == "success" and record["retries"] == 2
    assert len(http_server.requests_for("retry/flaky.bin")) == 3


def test_retries_give_up_with_the_last_failure(http_server):
    [record] = fetch_all([http_server.url("retry/down.bin", status=500)], retries=2, backoff=0.01)
    assert record["error_kind"] == "http_5xx" and record["retries"] == 2
    assert len(http_server.requests_for("retry/down.bin")) == 3


def test_404_is_never_retried(http_server):
    [record] = fetch_all([http_server.url("retry/gone.bin", status=404)], retries=5, backoff=0.01)
    assert record["error_kind"] == "http_4xx" and record["retries"] == 0
    assert len(http_server.requests_for("retry/gone.bin")) == 1


def test_429_waits_for_retry_after(http_server):
    url = http_server.url("retry/busy.bin", fail_times=1, status=429, retry_after=1)
    [record] = fetch_all([url], retries=1, backoff=0)
    assert record["status"] == "success"
    first, second = http_server.requests_for("retry/busy.bin")
    assert second["time"] - first["time"] >= 0.95


def test_retry_after_is_capped(http_server):
    url = http_server.url("retry/very-busy.bin", fail_times=1, status=429, retry_after=3600)
    started = time.monotonic()
    [record] = fetch_all([url], retries=1, max_retry_after=0.2)
    assert record["status"] == "success" and time.monotonic() - started < 5


def test_timeouts_are_retried(http_server):
    [record] = fetch_all([http_server.url("retry/slow.bin", delay=1)], timeout=0.2, retries=1, backoff=0)
    assert record["error_kind"] == "timeout" and len(http_server.requests_for("retry/slow.bin")) == 2


# Robots opt-outs, decided on the headers.

@pytest.mark.parametrize(
    "header, token, refused",
    [("noai", None, True), ("noimageai", None, True), ("noindex, nofollow", None, True),
     ("nofollow", None, False), ("any2dataset: noai", None, True), ("img2dataset: noimageai", None, True),
     ("otherbot: noai", None, False), ("mybot: noai", "mybot", True), ("noindex, unavailable_after: 2030", None, True)],
)
def test_x_robots_tag_opt_outs(http_server, header, token, refused):
    name = f"robots/{abs(hash((header, token)))}.bin"
    [record] = fetch_all([http_server.url(name, robots=header)], user_agent_token=token)
    assert (record["error_kind"] == "robots_optout") is refused
    if refused:
        assert header in record["error_message"] and record["http_status"] == 200


def test_robots_opt_out_is_refused_before_the_body(http_server):
    # The body would stall forever: only refusing on the headers can answer quickly.
    [record] = fetch_all([http_server.url("robots/stall.bin", robots="noai", stall=1, size=10**6)], timeout=20)
    assert record["error_kind"] == "robots_optout" and record["fetch_seconds"] < 10


def test_disallowed_directives_can_be_changed(http_server):
    [record] = fetch_all([http_server.url("robots/allowed.bin", robots="noai")], disallowed_directives=())
    assert record["status"] == "success"


# Safety guards.

def test_metadata_addresses_are_refused_without_a_request():
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[fe80::1]/x",
                "http://[::ffff:169.254.169.254]/"):
        [record] = fetch_all([url])
        assert record["error_kind"] == "address_denied", url


def test_a_redirect_cannot_reach_a_metadata_address_or_another_scheme(http_server):
    metadata = http_server.url("redir/meta.bin", location="http://169.254.169.254/latest/meta-data/iam")
    local = http_server.url("redir/file.bin", location="file:///etc/passwd")
    records = fetch_all([metadata, local], allowed_schemes=frozenset({"http", "https", "file"}))
    assert [r["error_kind"] for r in records] == ["address_denied", "scheme_denied"]


def test_host_names_resolving_to_metadata_addresses_are_refused(http_server):
    # What DNS would answer for a hostile name, pinned the way curl --resolve does.
    pinned = ("metadata.attacker.test:80:169.254.169.254",)
    [record] = fetch_all(["http://metadata.attacker.test/latest/meta-data/"], resolve=pinned)
    assert record["error_kind"] == "address_denied"
    # The same through a redirect from an allowed host.
    hop = http_server.url("redir/dns.bin", location="http://metadata.attacker.test/iam")
    [record] = fetch_all([hop], resolve=pinned)
    assert record["error_kind"] == "address_denied"
    # And a harmless name pinned to this machine goes through.
    port = http_server.server_address[1]
    [record] = fetch_all([f"http://fine.test:{port}/dns/ok.bin"], resolve=(f"fine.test:{port}:127.0.0.1",))
    assert record["status"] == "success"


def test_allow_address_lets_a_metadata_address_through():
    [record] = fetch_all(["http://169.254.1.1:9/"], allowed_networks=("169.254.0.0/16",), timeout=0.5)
    assert record["error_kind"] != "address_denied"


def test_local_files_need_allow_scheme(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 10)
    denied, = fetch_all([path.as_uri()])
    assert denied["error_kind"] == "scheme_denied"
    allowed = fetch_all([path.as_uri(), str(path), str(tmp_path / "missing.png")],
                        allowed_schemes=frozenset({"http", "https", "file"}))
    assert [r["status"] for r in allowed] == ["success", "success", "failed_to_download"]
    assert allowed[0]["files"] == {"png": path.read_bytes()} and allowed[2]["error_kind"] == "not_found"


def test_data_urls():
    records = fetch_all(["data:text/plain;base64,aGVsbG8=", "data:,hi%20there", "data:image/png;base64,!!"])
    assert records[0]["files"] == {"payload.txt": b"hello"} and records[0]["mime"] == "text/plain"
    assert records[1]["files"] == {"payload.txt": b"hi there"}
    assert records[2]["error_kind"] == "invalid_url"  # not base64: no lenient decoder skips it into 0 bytes


def test_fetch_from_s3(s3):
    s3.pipe("test-bucket/media/one.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ")
    urls = ["s3://test-bucket/media/one.wav", "s3://test-bucket/media/missing.wav"]
    denied = fetch_all(urls[:1])
    assert denied[0]["error_kind"] == "scheme_denied"
    records = fetch_all(urls, allowed_schemes=frozenset({"http", "https", "s3"}))
    assert records[0]["files"] == {"wav": b"RIFF\x00\x00\x00\x00WAVEfmt "} and records[0]["mime"] == "audio/wav"
    assert records[1]["error_kind"] == "not_found"


# Hashes, headers, order, per-host cap, re-fetching.

def test_verify_hash(http_server):
    body = body_for("/hash/a.bin", 1000)
    good = {"url": http_server.url("hash/a.bin"), "expected": hashlib.md5(body).hexdigest().upper()}
    bad = {"url": http_server.url("hash/a.bin"), "expected": "0" * 32}
    out = list(fetch([good, bad], FetchOptions(verify_hash=("expected", "md5"), ordered=True)))
    assert out[0]["status"] == "success" and out[0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert out[1]["error_kind"] == "hash_mismatch" and "files" not in out[1]


@pytest.mark.parametrize("algorithm", ["md5", "sha512", "xxh64"])
def test_other_hashes(http_server, algorithm):
    [record] = fetch_all([http_server.url("hash/b.bin")], hash=algorithm)
    assert len(record[algorithm]) in (16, 32, 128) and "sha256" not in record


def test_headers_and_user_agent_token(http_server):
    fetch_all([http_server.url("headers/a.bin")], headers={"Authorization": "Bearer s3cret"}, user_agent_token="mybot")
    [request] = http_server.requests_for("headers/a.bin")
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["User-Agent"].endswith("(compatible; mybot)")


def test_header_from_environment(cli, http_server, monkeypatch):
    from any2dataset.commands import fetch as fetch_command

    monkeypatch.setenv("A2D_TEST_TOKEN", "from-env")
    line = '{"url": "%s"}\n' % http_server.url("headers/env.bin")
    result = cli(fetch_command.main, ["--header-env", "X-Token: A2D_TEST_TOKEN"], input=line)
    assert result.exit_code == 0
    assert http_server.requests_for("headers/env.bin")[0]["headers"]["X-Token"] == "from-env"
    missing = cli(fetch_command.main, ["--header-env", "X-Token: A2D_NOT_SET"], input=line)
    assert missing.exit_code == 2 and "A2D_NOT_SET is not set" in missing.stderr


def test_ordered_keeps_input_order(http_server):
    urls = [http_server.url(f"order/{i}.bin", delay=0.3 if i % 3 == 0 else 0) for i in range(12)]
    out = list(fetch(({"url": url, "row": i} for i, url in enumerate(urls)),
                     FetchOptions(ordered=True, concurrency=8, retries=0)))
    assert [r["row"] for r in out] == list(range(12))
    unordered = list(fetch(({"url": url, "row": i} for i, url in enumerate(urls)),
                           FetchOptions(concurrency=8, retries=0)))
    assert [r["row"] for r in unordered] != list(range(12))


def test_per_host_cap(http_server):
    stalled = http_server.active  # handlers other tests left stalled
    http_server.max_active = stalled
    urls = [http_server.url(f"perhost/{i}.bin", delay=0.2) for i in range(8)]
    fetch_all(urls, concurrency=8, per_host=2)
    assert http_server.max_active - stalled == 2
    http_server.max_active = stalled
    fetch_all([u + "&again=1" for u in urls], concurrency=8)
    assert http_server.max_active - stalled > 2


def test_failed_records_pass_through_unless_retry_failed(http_server):
    failed = {"url": http_server.url("again/x.bin"), "status": "failed_to_download", "error_kind": "timeout",
              "error_message": "timed out"}
    [passed] = list(fetch([dict(failed)]))
    assert passed == failed and not http_server.requests_for("again/x.bin")
    [fetched] = list(fetch([dict(failed)], FetchOptions(retry_failed=True)))
    assert fetched["status"] == "success" and fetched["error_kind"] is None


def test_extension_from_magic_bytes_when_content_type_is_vague(http_server):
    # The deterministic body of this path starts with no magic; a data: URL with PNG magic does.
    [record] = fetch_all(["data:application/octet-stream;base64,iVBORw0KGgoAAAAA"])
    assert list(record["files"]) == ["png"] and record["mime"] == "image/png"
    [by_url] = fetch_all([http_server.url("ext/photo.jpeg", ctype="application/octet-stream")])
    assert list(by_url["files"]) == ["jpg"]


def test_tls_is_verified_unless_insecure(http_server, tmp_path):
    import ssl
    import threading
    from http.server import ThreadingHTTPServer

    import trustme

    from servers import _FaultHandler

    authority = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultHandler)
    server.requests, server.hits, server.lock = [], __import__("collections").Counter(), threading.Lock()
    server.stopping, server.active, server.max_active = threading.Event(), 0, 0
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/tls/a.png"
        [refused] = fetch_all([url])
        assert refused["error_kind"] == "tls"
        [accepted] = fetch_all([url], insecure=True)
        assert accepted["status"] == "success" and accepted["files"]["png"] == body_for("/tls/a.png", 1000)
    finally:
        server.shutdown()
        server.server_close()


def test_max_redirects(http_server):
    url = http_server.url("redir/count.bin", redirect=2)
    [too_many] = fetch_all([url], max_redirects=1)
    assert too_many["error_kind"] == "too_many_redirects"
    [followed] = fetch_all([url + "&again=1"], max_redirects=2)
    assert followed["status"] == "success"
