"""Real servers for tests, on 127.0.0.1: a fault-injecting HTTP server and an S3 server (moto).

Faults are chosen per request by query parameters, so a test builds the URL of
the fault it wants, and they compose (`?fail_times=2&status=503&retry_after=1`):

  size=N          body of N deterministic bytes (default 1000); the path picks the bytes
  status=N        answer with status N (with `fail_times=K`, only the first K requests); 1xx, 204,
                  205 and 304 with no body
  retry_after=S   Retry-After header on an error answer
  delay=S         wait S seconds before the status line (slow first byte)
  drip=S          send the body one byte every S seconds
  stall=1         send headers and half the body, then hang until the server stops
  reset=1         reset the TCP connection (RST) instead of answering
  truncate=N      announce `size` bytes in Content-Length but send only N and close
  redirect=N      redirect N times before answering; loop=1 redirects to itself forever
  location=URL    redirect (302) to URL
  robots=V        X-Robots-Tag: V (repeat the parameter for several X-Robots-Tag headers)
  bighead=N       a header line of N bytes (with heads=K, K of them)
  raw=KIND        not HTTP: `http09` (a body with no status line) or `garbage` (bytes, then close)
  ctype=T         Content-Type: T (default: from the path's extension)
  chunked=1       no Content-Length (chunked transfer encoding)

Every request is logged (path, query, headers, time, client port, raw target) in `server.requests`, and
`server.max_active` is the most requests it was answering at once.
"""

import contextlib
import functools
import mimetypes
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


def body_for(path: str, size: int) -> bytes:
    """The bytes a path serves: deterministic, so tests can check them."""
    return random.Random(path).randbytes(size)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the default of 5 drops connections when clients open many at once

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        self.requests: list[dict] = []
        self.hits = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.active = 0
        self.max_active = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-body is what several tests do on purpose

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str, **faults) -> str:
        query = f"?{urlencode(faults, doseq=True)}" if faults else ""  # a list: the parameter repeated
        return f"{self.base}/{path.lstrip('/')}{query}"

    def requests_for(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == "/" + path.lstrip("/")]

    def requests_for_prefix(self, prefix: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]

    def start(self) -> "FaultServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        with self.server.lock:
            self.server.active += 1
            self.server.max_active = max(self.server.max_active, self.server.active)
        try:
            self._answer()
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _answer(self):
        parts = urlsplit(self.path)
        lists = parse_qs(parts.query)
        query = {k: v[-1] for k, v in lists.items()}
        with self.server.lock:
            self.server.requests.append(
                {"path": parts.path, "query": query, "headers": dict(self.headers), "time": time.monotonic(),
                 "client": self.client_address[1], "target": self.path}
            )
            self.server.hits[self.path] += 1
            hit = self.server.hits[self.path]
        if self._misbehave(parts, query):
            return
        status = int(query.get("status", 200))
        if "fail_times" in query and hit > int(query["fail_times"]):
            status = 200
        if status != 200:
            return self._error(status, query)
        size = int(query.get("size", 1000))
        self._headers(parts.path, lists, query, size)
        self._body(body_for(parts.path, size), query)

    def _misbehave(self, parts, query: dict) -> bool:
        """Reset, delay, answer without HTTP or redirect as the query asks; True when answered."""
        if "reset" in query:
            # SO_LINGER 0 makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if "delay" in query:
            self.server.stopping.wait(float(query["delay"]))
        if "raw" in query:
            raw = {"http09": b"no status line, only bytes\n", "garbage": b"\x16\x03\x01\x00\xff junk\r\n\r\n"}
            self.wfile.write(raw[query["raw"]])
            self.close_connection = True
            return True
        if "loop" in query:
            self._redirect(self.path)
            return True
        if "location" in query:
            self._redirect(query["location"])
            return True
        if int(query.get("redirect", 0)) > 0:
            rest = dict(query, redirect=int(query["redirect"]) - 1)
            self._redirect(f"{parts.path}?{urlencode(rest)}")
            return True
        return False

    def _error(self, status: int, query: dict):
        body = b"" if status < 200 or status in (204, 205, 304) else f"error {status}\n".encode()
        self.send_response(status)
        if "retry_after" in query:
            self.send_header("Retry-After", query["retry_after"])
        self.send_header("Content-Type", "text/plain")
        if status not in (204, 304) and status >= 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _headers(self, path: str, lists: dict, query: dict, size: int):
        self.send_response(200)
        ctype = query.get("ctype") or mimetypes.guess_type(path)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        for value in lists.get("robots", []):
            self.send_header("X-Robots-Tag", value)
        for i in range(int(query.get("heads", 1)) if "bighead" in query else 0):
            self.send_header(f"X-Big-{i}", "b" * int(query["bighead"]))
        if "chunked" in query:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()

    def _body(self, body: bytes, query: dict):
        """The body: whole, chunked, or cut short, stalled or dripped as the query asks."""
        size = len(body)
        if "truncate" in query:
            self.wfile.write(body[: int(query["truncate"])])
            self.wfile.flush()
            self.close_connection = True
            return
        if "stall" in query:
            self.wfile.write(body[: size // 2])
            self.wfile.flush()
            self.server.stopping.wait(300)
            self.close_connection = True
            return
        if "drip" in query:
            pause = float(query["drip"])
            for i in range(size):
                if self.server.stopping.wait(pause):
                    break
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
            self.close_connection = True
            return
        if "chunked" in query:
            for start in range(0, size, 65536):
                piece = body[start:start + 65536]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location.encode("utf-8").decode("latin-1"))  # raw UTF-8, as servers send it
        self.send_header("Content-Length", "0")
        self.end_headers()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto's S3 in server mode on loopback: a real S3 API over real sockets."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        """Environment that points boto/s3fs (and our commands in subprocesses) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self) -> "S3Server":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder):
    """A plain static file server for `folder` on 127.0.0.1 (a random port); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
