"""What a hostile URL list must not get: cloud metadata through a proxy or in an odd spelling,
secrets sent to another host, a local file through a URL two parsers read differently,
credentials published in the metadata. Every refusal happens before any connection."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from any2dataset.fetch import FetchOptions, fetch
from any2dataset.fetch.guards import Guard
from servers import body_for


def fetch_all(urls, **options):
    options.setdefault("retries", 0)
    options.setdefault("timeout", 3)
    records = [{"url": url, "row": i} for i, url in enumerate(urls)]
    return sorted(fetch(records, FetchOptions(**options)), key=lambda r: r["row"])


class RecordingProxy(ThreadingHTTPServer):
    """An HTTP proxy that answers itself and writes down every URL it is asked for: /start
    redirects to the URL in the `to` map; anything else gets a body saying what it was."""
    daemon_threads = True

    def __init__(self, redirects: dict[str, str]):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.redirects = redirects
        self.asked: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.asked.append(self.path)  # a proxy is sent the absolute URL
        target = self.server.redirects.get(self.path)
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
        else:
            body = b"secret from " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not target:
            self.wfile.write(body)


@pytest.fixture
def proxy():
    servers = []

    def start(redirects):
        server = RecordingProxy(redirects)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


METADATA_TARGETS = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://evil.test/latest/meta-data/",  # a name pinned to the metadata address below
]


@pytest.mark.parametrize("how", ["environment", "option"])
@pytest.mark.parametrize("target", METADATA_TARGETS)
def test_a_proxy_does_not_open_the_way_to_metadata_at_a_redirect(proxy, monkeypatch, how, target):
    start = "http://127.0.0.1:9/start.jpg"  # the proxy answers for it; nothing listens on port 9
    server = proxy({start: target})
    options = {"resolve": ("evil.test:80:169.254.169.254",)}
    if how == "environment":
        monkeypatch.setenv("http_proxy", server.url)
    else:
        options["proxy"] = server.url
    [record] = fetch_all([start], **options)
    assert record["error_kind"] == "address_denied", record
    assert server.asked == [start]  # the metadata URL never reached the proxy


def test_a_proxy_still_fetches_ordinary_urls(proxy):
    server = proxy({"http://127.0.0.1:9/start.bin": "http://127.0.0.1:9/next.bin"})
    [record] = fetch_all(["http://127.0.0.1:9/start.bin"], proxy=server.url)
    assert record["status"] == "success"
    assert record["files"]["bin"] == b"secret from http://127.0.0.1:9/next.bin"
    assert server.asked == ["http://127.0.0.1:9/start.bin", "http://127.0.0.1:9/next.bin"]


def test_headers_go_to_the_first_host_only(http_server, monkeypatch):
    port = http_server.server_address[1]
    monkeypatch.setenv("A2D_TEST_SECRET", "s3cr3t")
    headers = {"X-Api-Key": "k3y", "Authorization": "Bearer s3cr3t"}
    same = http_server.url("hdr/same.bin", location=f"http://127.0.0.1:{port}/hdr/same-target.bin")
    other = http_server.url("hdr/other.bin", location=f"http://other.test:{port}/hdr/other-target.bin")
    pins = (f"other.test:{port}:127.0.0.1",)
    records = fetch_all([same, other], headers=headers, resolve=pins)
    assert [r["status"] for r in records] == ["success", "success"]
    [first] = http_server.requests_for("hdr/other.bin")
    [moved] = http_server.requests_for("hdr/other-target.bin")
    [kept] = http_server.requests_for("hdr/same-target.bin")
    assert first["headers"]["X-Api-Key"] == "k3y" and kept["headers"]["X-Api-Key"] == "k3y"
    assert "X-Api-Key" not in moved["headers"] and "Authorization" not in moved["headers"]

    trusted = http_server.url("hdr/trusted.bin", location=f"http://other.test:{port}/hdr/trusted-target.bin")
    fetch_all([trusted], headers=headers, resolve=pins, location_trusted=True)
    [moved] = http_server.requests_for("hdr/trusted-target.bin")
    assert moved["headers"]["X-Api-Key"] == "k3y"


@pytest.mark.parametrize("url", [
    " http:\t//127.0.0.1/../../etc/passwd",
    "http://127.0.0.1/a b.jpg",
    "http://127.0.0.1/a\x00.jpg",
    "ht\ntp://127.0.0.1/x.jpg",
    "file:///etc/passwd\x7f",
])
def test_whitespace_and_control_characters_inside_a_url_are_invalid(url, tmp_path, monkeypatch):
    # A folder named like the smuggled URL's path must not be read as a local file.
    monkeypatch.chdir(tmp_path)
    (tmp_path / " http:\t").mkdir()
    [record] = fetch_all([url], allowed_schemes=frozenset({"http", "https", "file"}))
    assert record["error_kind"] == "invalid_url", record
    assert "control character" in record["error_message"]


def test_whitespace_around_a_url_is_dropped_as_browsers_do(http_server):
    [record] = fetch_all([" \t" + http_server.url("ws/around.jpg", size=300) + " \n"])
    assert record["status"] == "success"
    assert record["files"]["jpg"] == body_for("/ws/around.jpg", 300)


@pytest.mark.parametrize("host", [
    "[::a9fe:a9fe]",  # IPv4-compatible
    "[64:ff9b::a9fe:a9fe]",  # NAT64
    "[64:ff9b:1::a9fe:a9fe]",  # local-use NAT64
    "[2002:a9fe:a9fe::]",  # 6to4
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, client 169.254.169.254 (obfuscated)
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped
    "2852039166",  # decimal
    "0xa9fea9fe",  # hexadecimal
    "0251.0376.0251.0376",  # octal
    "169.254.43518",  # a.b.c with a 16-bit last part
    "0xa9.0xfe.0xa9.0xfe",
    "metadata.google.internal",
    "METADATA.GOOGLE.INTERNAL.",
    "[fd00:ec2::254]",
    "100.100.100.200",
])
def test_every_spelling_of_a_metadata_address_is_refused(host, http_server):
    [record] = fetch_all([f"http://{host}/latest/meta-data/", http_server.url("ok/after.bin")])[:1]
    assert record["error_kind"] == "address_denied", record


def test_numeric_spellings_of_allowed_addresses_still_fetch(http_server):
    port = http_server.server_address[1]
    [record] = fetch_all([f"http://2130706433:{port}/num/decimal.bin"])  # 127.0.0.1
    assert record["status"] == "success", record
    assert http_server.requests_for("num/decimal.bin")


def test_guard_parses_a_url_once():
    guard = Guard(frozenset({"http", "https", "file", "data"}))
    assert guard.check("/data/cat.jpg")[1] == "file"
    assert guard.check("HTTP://127.0.0.1/x")[1] == "http"
    assert guard.check("data:,hi")[1] == "data"
    assert guard.check("/etc/passwd", redirected=True)[2] == "invalid_url"
    assert guard.check("file:///etc/passwd", redirected=True)[2] == "scheme_denied"
    assert guard.check("127.0.0.1/x.jpg")[2] == "invalid_url"


@pytest.mark.parametrize("output_format", ["webdataset", "parquet", "tfrecord", "files"])
def test_credentials_in_urls_are_not_published(output_format, http_server, pipeline, tmp_path):
    port = http_server.server_address[1]
    url = f"http://alice:pa55word@127.0.0.1:{port}/cred/a.jpg"
    (tmp_path / "urls.txt").write_text(url + "\n" + http_server.url("cred/b.jpg") + "\n")
    done = pipeline(f"a2d-read -q urls.txt | a2d-shard -q | a2d-fetch -q -w 1 "
                    f"| a2d-write -q --format {output_format} out")
    assert done.returncode == 0, done.stderr.decode()
    published = b"".join(path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert b"pa55word" not in published and b"alice" not in published
    table = pq.read_table(tmp_path / "out" / "00000.parquet")
    assert sorted(table.column("url").to_pylist())[0] == f"http://***@127.0.0.1:{port}/cred/a.jpg"
    # The fingerprint that --skip-done compares still matches the input's.
    again = pipeline("a2d-read -q urls.txt | a2d-shard -q --skip-done out | wc -l")
    assert again.returncode == 0 and again.stdout.strip() == b"0", again.stderr.decode()


def test_a_percent_escape_in_a_host_name_is_invalid(http_server):
    port = http_server.server_address[1]
    [record] = fetch_all([f"http://%6cocalhost:{port}/pct.bin"])  # libcurl would read it as localhost
    assert record["error_kind"] == "invalid_url" and "% escape" in record["error_message"]


def test_addresses_are_checked_when_libcurl_resolves_itself(http_server, monkeypatch):
    """No name server for the engine's resolver (or --system-dns): libcurl resolves, and its
    open-socket check still refuses denied addresses. Here 127.0.0.0/8 plays the denied network."""
    import ipaddress

    from any2dataset.fetch import dns, guards

    monkeypatch.setattr(guards, "DENIED_NETWORKS", guards.DENIED_NETWORKS + (ipaddress.ip_network("127.0.0.0/8"),))
    port = http_server.server_address[1]
    for how in ({"system_dns": True}, {}):
        if not how:
            monkeypatch.setattr(dns.Resolver, "from_system", classmethod(lambda cls, *a, **k: None))
        [record] = fetch_all([f"http://localhost:{port}/sysdns.bin"], **how)
        assert record["error_kind"] == "address_denied", (how, record)


def test_behind_a_proxy_with_no_name_server_a2d_fetch_refuses_to_start(proxy, monkeypatch):
    from any2dataset.errors import UsageProblem
    from any2dataset.fetch import dns

    monkeypatch.setattr(dns.Resolver, "from_system", classmethod(lambda cls, *a, **k: None))
    server = proxy({})
    with pytest.raises(UsageProblem, match="no name server"):
        fetch_all(["http://127.0.0.1:9/x.bin"], proxy=server.url)


def test_local_paths_with_spaces_are_still_files(tmp_path):
    (tmp_path / "a b.jpg").write_bytes(b"\xff\xd8\xffspace")
    [record] = fetch_all([str(tmp_path / "a b.jpg")], allowed_schemes=frozenset({"http", "https", "file"}))
    assert record["status"] == "success" and record["files"]["jpg"] == b"\xff\xd8\xffspace"


def test_a_payload_does_not_take_the_name_of_a_list_column(http_server):
    records = [{"url": http_server.url("cols/x.lang", ctype="application/octet-stream"), "lang": "en", "row": 0}]
    [record] = fetch(records, FetchOptions(retries=0))
    assert record["lang"] == "en" and set(record["files"]) == {"payload.lang"}
