"""JSONL record streams over files, stdin and stdout.

Every command reads and writes records through here, so they all get the same
error positions, the same bad-line policy, big buffers and big pipe buffers.
"""

import fcntl
import io
import os
import stat
import sys
import threading
from collections.abc import Iterable, Iterator

import orjson

from . import record as rec
from .errors import BadInput, UpstreamFailed, UsageProblem

STDIO = "-"
STDIN_NAME = "<stdin>"
# A record of a 69 KB image is a ~92 KB line: bigger than Linux's default 64 KiB
# pipe, so writer and reader would take turns. 1 MiB pipes measured 2x faster.
PIPE_SIZE = 1 << 20
BUFFER_SIZE = 1 << 20


def enlarge_pipe(fd: int) -> None:
    """Raise the kernel buffer of a pipe, where Linux allows it; harmless elsewhere."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError, ValueError):
        pass  # not Linux, not a pipe, or above /proc/sys/fs/pipe-max-size


def open_input(path: str, mode: str = "rb", **fsspec_options):
    """A readable file for a local or fsspec path; `-` is stdin. Compression is inferred.
    A missing file is a usage problem (exit 2), as for every command."""
    try:
        return _open_input(path, mode, **fsspec_options)
    except FileNotFoundError:
        raise UsageProblem(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageProblem(f"{path}: is a folder, not a file of records") from None


def _open_input(path: str, mode: str, **fsspec_options):
    if path == STDIO:
        binary = _std_stream(sys.stdin, "rb")
        if "b" in mode:
            return binary
        return io.TextIOWrapper(binary, encoding=fsspec_options.get("encoding", "utf-8"),
                                newline=fsspec_options.get("newline"))
    # (fsspec is imported here, not at the top: a stage reading stdin and writing stdout, as
    # a2d-shard and a2d-fetch mostly do, starts 0.1-0.2 s sooner without it)
    import fsspec
    from fsspec.utils import infer_compression

    if "://" not in path and infer_compression(path) is None:
        # Local and plain: the built-in file is much faster per line than fsspec's wrapper.
        if "b" in mode:
            return io.open(path, mode, buffering=BUFFER_SIZE)
        return io.open(path, mode, buffering=BUFFER_SIZE, encoding=fsspec_options.get("encoding", "utf-8"),
                       newline=fsspec_options.get("newline"))
    return fsspec.open(path, mode, compression="infer", **fsspec_options).open()


def _std_stream(stream, mode: str):
    """stdin/stdout as a big-buffered binary file on its descriptor (and a big pipe)."""
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return stream.buffer  # replaced in-process, e.g. by click's test runner
    enlarge_pipe(fd)
    return io.open(fd, mode, buffering=BUFFER_SIZE, closefd=False)


def display_name(path: str) -> str:
    return STDIN_NAME if path == STDIO else path


class RecordReader:
    """Records from JSONL sources, remembering where each came from.

    on_error="fail" raises BadInput at the first bad line; "skip" drops bad lines
    and counts them in `skipped`. With decode=True payloads arrive as bytes.
    `source` and `line` name the line of the record most recently yielded, so a
    later stage can place an error it finds in that record. `lines()` yields the
    checked lines themselves, for passing records on without re-encoding them.
    """

    def __init__(self, paths: Iterable[str] = (STDIO,), *, on_error: str = "fail", decode: bool = False):
        self.paths = list(paths) or [STDIO]
        self.on_error = on_error
        self.decode = decode
        self.count = 0  # records yielded
        self.skipped = 0
        self.first_skipped: BadInput | None = None
        self.source = None
        self.line = 0

    def __iter__(self) -> Iterator[dict]:
        for path in self.paths:
            self.source = display_name(path)
            self.line = 0
            with open_input(path) as stream:
                yield from self._records(stream)

    def lines(self) -> Iterator[bytes]:
        """The input's lines that hold valid records, each ending in a newline."""
        for line, _record in self.pairs():
            yield line

    def pairs(self) -> Iterator[tuple[bytes, dict]]:
        """Each valid input line (ending in a newline) with its record: for stages that
        pass the exact bytes on and still look at the record."""
        for path in self.paths:
            self.source = display_name(path)
            self.line = 0
            with open_input(path) as stream:
                for line, record in self._checked(stream):
                    yield (line if line.endswith(b"\n") else line + b"\n"), record

    def _records(self, stream) -> Iterator[dict]:
        for _line, record in self._checked(stream):
            yield record

    def _checked(self, stream) -> Iterator[tuple[bytes, dict]]:
        parse, decode = rec.parse, self.decode
        for line in stream:
            self.line += 1
            if line.isspace():
                continue
            try:
                if len(line) > rec.MAX_LINE_BYTES:
                    raise BadInput(f"a line of {len(line)} bytes is over the {rec.MAX_LINE_BYTES >> 20} MiB a record "
                                   f"may take")
                record = parse(line)
                if decode:
                    rec.decode_payloads(record)
            except BadInput as error:
                if not self.count and not line.lstrip().startswith((b"{", b"[")):
                    error = BadInput(f"{error.what}: records are JSON objects, one per line; for a list of URLs "
                                     f"(txt, csv, parquet, ...) run a2d-read first (a2d-read urls.csv | ...)")
                self.bad(error)
                continue
            if rec.ABORT in record:
                origin = str(record[rec.ABORT])
                raise UpstreamFailed(f"{self.source or STDIN_NAME}:{self.line}: a stage before this one failed, so "
                                     f"this is not the whole input ({origin})", origin=origin)
            self.count += 1
            yield line, record

    def bad(self, error: BadInput) -> None:
        """Apply the bad-input policy to an error found in the current record."""
        error = error.located(self.source or STDIN_NAME, self.line)
        if self.on_error != "skip":
            raise error
        self.skipped += 1
        if self.first_skipped is None:
            self.first_skipped = error


# The record outputs this process opened (paths, or STDIO), latest last.
RECORD_OUTPUTS: list[str] = []


def end_with_abort(line: bytes, default_stdout: bool) -> None:
    """Append an abort line (record.ABORT) to this process's record output: the file of -o, or
    standard output (also when no writer was opened yet, if `default_stdout`). After a newline,
    so that a line cut short by the failure cannot swallow it. Not on a terminal."""
    target = RECORD_OUTPUTS[-1] if RECORD_OUTPUTS else (STDIO if default_stdout else None)
    if target is None:
        return
    line = b"\n" + line
    if target == STDIO:
        fd = sys.stdout.fileno()
        if os.isatty(fd):
            return
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.write(fd, line)
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(target)
    if fs.exists(path):  # (a temporary file removed on the failure is not brought back)
        with fsspec.open(target, "ab", compression="infer") as stream:
            stream.write(line)


class RecordWriter:
    """Writes records as JSON lines to a file or stdout through a large buffer.

    A background thread flushes the buffer when records have waited in it for
    FLUSH_SECONDS, so a slow stage (a straggling download) does not hold back
    finished records from the next stage. Buffered writers are thread-safe.
    """

    FLUSH_SECONDS = 0.25

    def __init__(self, path: str = STDIO, stream=None):
        if stream is None:
            RECORD_OUTPUTS.append(path)  # where an abort line goes if the command fails (end_with_abort)
        if stream is not None:  # any object with write(bytes), flush() and close()
            self.stream = stream
        elif path == STDIO:
            self.stream = _std_stream(sys.stdout, "wb")
        else:
            import fsspec

            self.stream = fsspec.open(path, "wb", compression="infer").open()
        self.count = 0
        self._closing = threading.Event()
        self._flusher = threading.Thread(target=self._flush_now_and_then, name="a2d-flush", daemon=True)
        self._flusher.start()

    def _flush_now_and_then(self) -> None:
        flushed_at = 0
        while not self._closing.wait(self.FLUSH_SECONDS):
            count = self.count
            if count != flushed_at:
                try:
                    self.stream.flush()
                except (OSError, ValueError):
                    return  # a closed pipe or file: the writing thread will hear of it
                flushed_at = count

    def write(self, record: dict) -> None:
        self.stream.write(rec.dumps(record))
        self.count += 1

    def write_lines(self, chunks: Iterable[bytes]) -> int:
        """Write chunks of whole JSON lines as they are (a filter passing its input on, or lines
        made by worker processes); each chunk counts as one record for the flusher."""
        write = self.stream.write
        for chunk in chunks:
            write(chunk)
            self.count += 1
        return self.count

    def write_all(self, records: Iterable[dict]) -> int:
        write = self.stream.write
        dumps, default, option = orjson.dumps, rec.json_default, rec.DUMP_OPTIONS  # rec.dumps, inlined
        for record in records:
            write(dumps(record, default=default, option=option))
            self.count += 1
        return self.count

    def close(self) -> None:
        self._closing.set()
        self._flusher.join()  # no thread may still be flushing while the process ends
        self.stream.flush()
        if self.stream is not getattr(sys.stdout, "buffer", None):
            self.stream.close()  # never the interpreter's own stdout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
