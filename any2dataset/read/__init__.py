"""a2d-read's library: URL lists, existing datasets and folders of files, out as records.

Each list format is a small module giving a Table (its columns, and rows of the
columns asked for); this module expands paths, picks the format (formats.py: the
table of formats), maps columns onto record fields and places errors at their input
position. Existing datasets (dataset.py) and raw folders (raw.py) give records directly.
"""

import glob as globlib
import io
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import braceexpand
import fsspec
import orjson

from .. import record as rec
from ..errors import BadInput, UsageProblem
from ..streams import STDIO, display_name, open_input
from . import dataset
from .formats import (
    DATASET,
    FORMATS,
    LIST_FORMATS,  # noqa: F401 (the all-in-one asks this module)
    READ_FORMATS,
    ReadFormat,
    format_of_name,
)
from .table import Bad, Table, TextDecoding, unreadable


@dataclass
class ReadOptions:
    input_format: str | None = None
    url_col: str = "url"
    caption_col: str | None = None
    clip_col: str | None = None
    save_additional_columns: list[str] | None = None
    inline: bool = False
    encoding: str = "utf-8"  # of text lists (txt, csv, tsv, json, jsonl); a byte-order mark is dropped
    on_error: str = "fail"  # a bad row: "fail" stops, "skip" drops it (BadRows counts it)
    file_field: str | None = None  # a field for each record's input file (a2d-shard --new-shard-on takes it)

    def __post_init__(self):
        if self.inline and self.input_format != "raw":
            raise UsageProblem("--inline goes with --input-format raw")


class BadRows:
    """What a bad row of a list does: with on_error="fail" its error is raised; with "skip"
    it is dropped, counted in `skipped` (the first kept in `first_skipped`) and `warn` is
    called once per file that has any."""

    def __init__(self, on_error: str = "fail", warn=None):
        if on_error not in ("fail", "skip"):
            raise UsageProblem(f"unknown --on-error {on_error!r} (fail or skip)")
        self.on_error = on_error
        self.warn = warn
        self.skipped = 0
        self.first_skipped: BadInput | None = None
        self._warned: set[str] = set()

    def of(self, source: str) -> "_FileRows":
        return _FileRows(self, source)


class _FileRows:
    """The bad-row policy for one file (called with a row's error), and the last row read from
    it (`row`), to say where a file that breaks off broke off."""

    def __init__(self, policy: BadRows, source: str):
        self.policy = policy
        self.source = source
        self.row: int | None = None

    def __call__(self, error: BadInput) -> None:
        policy, source = self.policy, self.source
        error = error.located(source, None)
        if policy.on_error != "skip":
            raise error
        policy.skipped += 1
        if policy.first_skipped is None:
            policy.first_skipped = error
        if source not in policy._warned:
            policy._warned.add(source)
            if policy.warn is not None:
                policy.warn(f"{error} (skipping this and any other bad row of {source})")


def format_of(path: str) -> str | None:
    """The input format from a file name, ignoring a compression suffix; None if unknown."""
    return format_of_name(posixpath.basename(path.rstrip("/")).lower())


def infer_format(path: str) -> str:
    if path == STDIO:
        return "txt"
    fmt = format_of(path)
    if fmt is None:
        raise UsageProblem(
            f"{path}: cannot tell the input format from the name; use --input-format ({'|'.join(FORMATS)})"
        )
    return fmt


def expand_paths(patterns: Iterable[str], input_format: str | None = None) -> list[tuple[str, str]]:
    """Brace patterns, globs and folders to a list of (path, format)."""
    expanded = []
    for pattern in patterns or [STDIO]:
        for path in braceexpand.braceexpand(pattern):
            if path == STDIO:
                expanded.append((path, input_format or "txt"))
                continue
            fs, root = fsspec.core.url_to_fs(path)
            remote = "://" in path

            # Bound now: a closure over the loop's `fs` and `remote` would see a later path's.
            def name(found: str, fs=fs, remote=remote) -> str:
                return fs.unstrip_protocol(found) if remote else found

            if globlib.has_magic(root):
                matches = sorted(fs.glob(root))
                if not matches:
                    raise UsageProblem(f"{path}: no file matches")
                for match in matches:
                    if fs.isdir(match):
                        expanded.extend(_folder(fs, match, name, input_format))
                    else:
                        expanded.append((name(match), input_format or infer_format(match)))
            elif fs.isdir(root):
                expanded.extend(_folder(fs, root, name, input_format))
            elif fs.exists(root):
                expanded.append((path, input_format or infer_format(path)))
            else:
                raise UsageProblem(f"{path}: no such file")
    return expanded


def _hidden(path: str) -> bool:
    return any(part.startswith((".", "_")) for part in path.split("/") if part)


def _folder(fs, folder: str, name, input_format: str | None) -> list[tuple[str, str]]:
    """What a folder holds: a dataset's shards, raw files, or every list of a known format."""
    files = sorted(f for f in fs.find(folder) if not _hidden(f[len(folder):]))
    if input_format == "raw":
        return [(name(f), "raw") for f in files]
    if input_format in ("files", None):
        # `{shard}/` beside `{shard}.parquet`; a shard without successes has an empty folder.
        shard_dirs = sorted({f[: -len(".parquet")] for f in files
                             if f.endswith(".parquet") and posixpath.basename(f)[: -len(".parquet")].isdigit()
                             and fs.isdir(f[: -len(".parquet")])})
        # (Shard tars lie beside the parquet files; a .tar inside a shard's folder is a sample's payload.)
        top = folder.rstrip("/")
        if shard_dirs and (input_format == "files" or
                           not any(f.endswith(".tar") and posixpath.dirname(f) == top for f in files)):
            return [(name(d), "files") for d in shard_dirs]
    is_dataset = any(f.endswith("_stats.json") for f in files)
    found = []
    for f in files:
        fmt = format_of(f)
        if input_format is not None and fmt != input_format and not (input_format == "txt" and fmt is None):
            continue
        if fmt is None and input_format is None:
            continue  # not a list: a README, a checksum file, ...
        if is_dataset and f.endswith("_stats.json"):
            continue
        found.append((name(f), input_format or fmt))
    data_formats = {fmt for _, fmt in found} & {"webdataset", "tfrecord"}
    if is_dataset and data_formats:
        # A dataset folder: the tars (or tfrecords) are the data, their parquet files are merged in.
        found = [(f, fmt) for f, fmt in found if fmt in data_formats]
    if not found:
        raise UsageProblem(f"{folder}: no input file of a known format in this folder")
    return found


class ColumnMap:
    """How one list's columns become record fields."""

    def __init__(self, table: Table, source: str, fmt: ReadFormat, options: ReadOptions, bad: Bad):
        columns = table.columns
        available = ", ".join(columns) or "none"
        # jsonl: a column missing from the first row may come in later rows.
        lenient = table.open_columns

        def require(column: str, option: str) -> str:
            if column not in columns and not lenient:
                raise UsageProblem(f"{source}: no column {column!r} for {option} (columns: {available})")
            return column

        fields = {"url": columns[0] if fmt.headerless else require(options.url_col, "--url-col")}
        if options.caption_col:
            fields["caption"] = require(options.caption_col, "--caption-col")
        elif options.caption_col is None and "caption" in columns:  # ("": no caption at all)
            fields["caption"] = "caption"
        if options.clip_col is not None:
            fields["clips"] = require(options.clip_col, "--clip-col")
        used = set(fields.values())
        if options.save_additional_columns is None:
            extra = [c for c in columns if c not in used]
        else:
            extra = [require(c, "--save-additional-columns") for c in options.save_additional_columns]
        for column in extra:
            if column in rec.RESERVED:
                raise UsageProblem(
                    f"{source}: column {column!r} is a reserved record field; rename it "
                    f"or leave it out with --save-additional-columns"
                )
        self.names = [*fields, *extra]  # record field names, in order
        self.selected = [*fields.values(), *extra]  # the input columns they come from
        self.keep_unknown = options.save_additional_columns is None
        self.clips = "clips" in fields
        # A later row's `caption` is its caption when no column is named for it (jsonl).
        self.late_caption = lenient and "caption" not in fields and options.caption_col is None
        self.typed = fmt.typed
        self.bad = bad
        self.url_seen = not lenient or options.url_col in columns
        self.url_col = options.url_col
        self.source = source

    def records(self, rows) -> Iterator[dict]:
        names = self.names
        line = None
        try:
            if not self.clips and not self.typed:
                # The common case (csv, tsv, txt: values are strings or null), kept lean: this runs
                # for every row of every list.
                for line, values, unknown in rows:
                    record = dict(zip(names, values))
                    if unknown and not self._add_unknown(record, unknown, line):
                        continue
                    yield record
                return
            bad = self.bad
            for line, values, unknown in rows:
                record = dict(zip(names, values))
                if unknown and not self._add_unknown(record, unknown, line):
                    continue
                if self.clips:
                    try:
                        record["clips"] = _clips(record["clips"], line)
                    except BadInput as error:
                        bad(error)
                        continue
                if self.typed and not self._typed(record, line):
                    continue
                yield record
        except Exception:
            self.bad.row = line  # (the row before the failure: no cost per row)
            raise
        if not self.url_seen:
            raise UsageProblem(f"{self.source}: no row has column {self.url_col!r} for --url-col")

    def _typed(self, record: dict, line) -> bool:
        """url and caption as the next stages take them (record.check's rules): a caption that is a
        number becomes its text (img2dataset writes str(caption)), NaN no caption."""
        url = record.get("url")
        if type(url) is not str:
            if url is not None:
                return self._refuse("url", url, line)
        elif not self.url_seen:
            self.url_seen = True
        caption = record.get("caption")
        if caption is not None and type(caption) is not str:
            if type(caption) in _NUMBERS:
                record["caption"] = None if caption != caption else str(caption)  # (NaN != NaN)
            else:
                return self._refuse("caption", caption, line)
        return True

    def _refuse(self, name: str, value, line) -> bool:
        try:
            rec.check({name: value})
        except BadInput as error:
            self.bad(BadInput(error.what, line=line))
        else:  # (a type record.check takes but the list should not give: not the case today)
            self.bad(BadInput(f"field {name} has an unexpected type", line=line))
        return False

    def _add_unknown(self, record: dict, unknown: dict, line) -> bool:
        """Fields of a row beyond the first row's columns (jsonl); False if the row is bad."""
        if self.late_caption and "caption" in unknown:
            record["caption"] = unknown["caption"]
            if len(unknown) == 1:
                return True
            unknown = {name: value for name, value in unknown.items() if name != "caption"}
        if not self.keep_unknown:
            return True
        for column in unknown:
            if column in rec.RESERVED:
                self.bad(BadInput(f"field {column!r} is a reserved record field", line=line))
                return False
        record.update(unknown)
        return True


_NUMBERS = (int, float, Decimal)


def _clips(value, line):
    """A clip column: [[start, end], ...] in seconds, as a list or as JSON text (csv)."""
    if value is None or isinstance(value, list):
        return value
    try:
        clips = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        raise BadInput(f"clip column is not a JSON list of [start, end] pairs: {str(value)[:80]}", line=line) \
            from None
    if not isinstance(clips, list):
        raise BadInput(f"clip column is not a list: {str(value)[:80]}", line=line)
    return clips


def _read_list(path: str, fmt: ReadFormat, options: ReadOptions, text: TextDecoding, bad: Bad) -> Iterator[dict]:
    with _open_list(path) as binary:
        stream = text.wrap(binary) if fmt.text else binary
        table = fmt.load(stream, text, bad)
        if not table.columns:  # an empty file has no rows to account for
            return
        if dataset.is_record_table(table.columns) and not fmt.headerless:
            # A table of records (it has keys): an existing dataset's metadata, kept whole.
            for line, values, unknown in table.rows(table.columns):
                record = dataset.unpack_row(dict(zip(table.columns, values)))
                if unknown:
                    record.update(unknown)
                try:
                    rec.check(record)
                except BadInput as error:
                    bad(BadInput(error.what, line=line))
                    continue
                yield record
            return
        mapping = ColumnMap(table, display_name(path), fmt, options, bad)
        yield from mapping.records(table.rows(mapping.selected))


def _open_list(path: str):
    """A list's bytes. zstd is decompressed here: fsspec's reader (python-zstandard's stream_reader)
    ends a cut-short .zst quietly, as if the list ended there."""
    if path != STDIO and path.lower().endswith(".zst"):
        return io.BufferedReader(_ZstdReader(fsspec.open(path, "rb", compression=None).open()), 1 << 20)
    return open_input(path, "rb")


class _ZstdReader(io.RawIOBase):
    def __init__(self, raw):
        import zstandard

        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = self._new()
        self._in_frame = False  # part of a frame was read, not its end
        self._out = b""
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at == len(self._out):
            data = self._raw.read(1 << 20)
            if not data:
                if self._in_frame:
                    raise EOFError("compressed file ended before the end of its zstd frame")
                return 0
            self._out, self._at = self._decompress(data), 0
        size = min(len(buffer), len(self._out) - self._at)
        buffer[:size] = self._out[self._at:self._at + size]
        self._at += size
        return size

    def _decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._frame.decompress(data))
            self._in_frame = True
            if not self._frame.eof:
                break
            data = self._frame.unused_data  # the next frame starts here
            self._frame = self._new()
            self._in_frame = False
        return b"".join(out)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _records_of(path: str, fmt: ReadFormat, options: ReadOptions, text: TextDecoding, bad: Bad) -> Iterator[dict]:
    if fmt.kind == DATASET:
        return fmt.load(path, options)
    if fmt.as_dataset is not None and path != STDIO:
        records = fmt.as_dataset(path)
        if records is not None:
            return records
    return _read_list(path, fmt, options, text, bad)


def _with_field(records: Iterable[dict], name: str, value: str) -> Iterator[dict]:
    for record in records:
        record[name] = value
        yield record


def read(paths: Iterable[str] = (STDIO,), options: ReadOptions | None = None,
         bad_rows: BadRows | None = None) -> Iterator[dict]:
    """Records from URL lists, datasets or folders. Every record of one list has the same fields.
    A bad row raises BadInput, or is counted in `bad_rows` and dropped (options.on_error skip)."""
    options = options or ReadOptions()
    if options.input_format is not None and options.input_format not in FORMATS:
        raise UsageProblem(f"unknown input format {options.input_format!r} (one of {', '.join(FORMATS)})")
    yield from read_expanded(expand_paths(list(paths), options.input_format), options, bad_rows)


def read_expanded(files: Iterable[tuple[str, str]], options: ReadOptions,
                  bad_rows: BadRows | None = None) -> Iterator[dict]:
    """read() of files already expanded by expand_paths: (path, format) pairs."""
    text = TextDecoding(options.encoding)
    bad_rows = bad_rows or BadRows(options.on_error)
    for path, name in files:
        fmt = READ_FORMATS[name]
        source = display_name(path)
        bad = bad_rows.of(source)
        count = 0
        try:
            records = _records_of(path, fmt, options, text, bad)
            if options.file_field:
                records = _with_field(records, options.file_field, source)
            if fmt.may_be_dataset:
                for record in records:
                    # records of an existing dataset (they have keys) are checked here
                    if "key" in record and not _dataset_record_ok(record, bad):
                        continue
                    count += 1
                    yield record
            else:
                yield from records
        except BadInput as error:
            raise error.located(source, None) from None
        except UnicodeDecodeError as error:
            raise BadInput(f"not {options.encoding} text ({error.reason})", source) from None
        except Exception as error:
            if not unreadable(error):
                raise
            raise _cut_short(error, source, bad.row, count) from None


def _dataset_record_ok(record: dict, bad: "_FileRows") -> bool:
    """Check a record of an existing dataset (its status spelled as a2d-write spells it); a bad
    one goes to `bad` (which raises, or counts it to be dropped)."""
    if record.get("status") in rec.STATUS_ALIASES:
        record["status"] = rec.STATUS_ALIASES[record["status"]]
    try:
        rec.check(record)
    except BadInput as error:
        bad(error)
        return False
    return True


def _cut_short(error: Exception, source: str, row: int | None, count: int) -> BadInput:
    """An unreadable file's error, saying how far reading got: the row, or the records read."""
    if row is not None:
        where = f" after row {row}"
    else:
        where = f" after {count} record{'s' if count != 1 else ''}" if count else ""
    return BadInput(f"corrupt or cut short{where} ({type(error).__name__}: {error})", source)
