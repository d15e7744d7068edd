"""a2d-fetch against the fault-injecting server: every fault gives the right error_kind."""

import hashlib
import time

import pytest

from servers import body_for
from any2dataset.fetch import FetchOptions, fetch


def fetch_all(urls, **options):
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
    [record] = fetch_all([http_server.url("stall.bin", stall=1, size=100000)], timeout=0.5, deadline=5)
    assert record["error_kind"] == "timeout"
    assert time.monotonic() - started < 3


def test_a_drip_feed_is_cut_by_the_deadline(http_server):
    # Each byte arrives within the read timeout, so only the total deadline can stop it.
    started = time.monotonic()
    [record] = fetch_all([http_server.url("drip.bin", drip=0.05, size=1000)], timeout=2, deadline=1)
    assert record["error_kind"] == "timeout" and "deadline" in record["error_message"]
    assert time.monotonic() - started < 3


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


def test_a_slow_consumer_bounds_what_is_read_ahead(http_server):
    """Backpressure: with 4 slots + 4 buffered, input is not read far ahead of the consumer."""
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield {"url": http_server.url(f"bp/{i}.bin", size=10)}

    results = fetch(source(), FetchOptions(concurrency=4, buffer=4))
    next(results)
    time.sleep(0.5)
    # 8 slots, plus the one the consumed record freed, plus one read and waiting for a slot.
    assert len(pulled) <= 4 + 4 + 1 + 1
    assert len(list(results)) == 99
