"""a2d-read on awkward inputs (issue 13): field types checked where the list is, optional jsonl
fields, webdataset members in folders, huge csv fields, byte-order marks, other encodings and
--on-error skip, corrupt and cut-short files named with exit 3."""

import bz2
import gzip
import io
import lzma
import tarfile

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from any2dataset.commands import read as read_command
from any2dataset.errors import BadInput
from any2dataset.read import ReadOptions, read


def records_of(result):
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def one_error_line(result, code=3):
    """The command failed with `code` and said so in one line, with no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --- 4: fields the next stage would refuse are checked (or converted) at a2d-read ---------------

def test_number_captions_in_parquet_become_text_and_nan_is_no_caption(tmp_path, pipeline):
    path = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["http://x/1", "http://x/2", "http://x/3"],
                             "caption": [1.5, float("nan"), None]}), path)
    assert list(read([str(path)])) == [
        {"url": "http://x/1", "caption": "1.5"}, {"url": "http://x/2", "caption": None},
        {"url": "http://x/3", "caption": None}]
    path = tmp_path / "ints.jsonl"
    path.write_text('{"url": "http://x/1", "caption": 7}\n')
    assert list(read([str(path)])) == [{"url": "http://x/1", "caption": "7"}]
    # and the next stage takes them
    result = pipeline(f"a2d-read {tmp_path}/urls.parquet | a2d-shard | wc -l")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"3"


def test_a_list_as_url_in_jsonl_is_named_with_its_file_and_row(cli, tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text('{"url": "http://x/1"}\n\n{"url": ["http://x/2"]}\n')
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line == f"a2d-read: error: {path}:3: field url must be a string, got an array"


def test_a_number_url_or_a_boolean_caption_in_parquet_names_the_row(cli, tmp_path):
    path = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["http://x/1", "http://x/2"], "caption": [None, True]}), path)
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line == f"a2d-read: error: {path}:2: field caption must be a string, got a boolean"
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"url": [12, 13]}), path)
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line == f"a2d-read: error: {path}:1: field url must be a string, got an integer"


# --- 5: jsonl rows may have optional mapped fields, whatever the first row had --------------------

def test_jsonl_caption_missing_from_the_first_row(tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text('{"url": "http://x/1"}\n{"url": "http://x/2", "caption": "two"}\n')
    assert list(read([str(path)])) == [{"url": "http://x/1"}, {"url": "http://x/2", "caption": "two"}]
    assert list(read([str(path)], ReadOptions(save_additional_columns=[]))) == [
        {"url": "http://x/1"}, {"url": "http://x/2", "caption": "two"}]


def test_jsonl_mapped_columns_missing_from_the_first_row(tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text('{"id": 1}\n{"link": "http://x/2", "text": "two", "id": 2, "lang": "en"}\n')
    options = ReadOptions(url_col="link", caption_col="text", save_additional_columns=["lang"])
    assert list(read([str(path)], options)) == [
        {"url": None, "caption": None, "lang": None}, {"url": "http://x/2", "caption": "two", "lang": "en"}]
    # a later row's reserved field that no option maps is still refused, at its row
    path.write_text('{"link": "http://x/1", "text": "a"}\n{"link": "http://x/2", "caption": "b"}\n')
    with pytest.raises(BadInput, match=r"urls.jsonl:2: field 'caption' is a reserved record field"):
        list(read([str(path)], ReadOptions(url_col="link", caption_col="text")))


def test_jsonl_url_column_that_no_row_has_is_a_usage_error(cli, tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text('{"href": "http://x/1"}\n')
    result = cli(read_command.main, [str(path), "--url-col", "link"])
    assert result.exit_code == 2
    assert f"{path}: no row has column 'link' for --url-col" in result.stderr


# --- 6: webdataset tars whose members are in folders ----------------------------------------------

def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_members_in_folders_are_samples_of_their_own(tmp_path, pipeline):
    _tar(tmp_path / "data.tar", [("train/0001.png", b"A"), ("train/0001.cls", b"1"),
                                 ("val/0001.png", b"B"), ("val/0001.cls", b"2"), ("v1.0/x.y.png", b"C")])
    records = list(read([str(tmp_path / "data.tar")]))
    assert [(r["key"], r.get("wds_key"), r["files"]) for r in records] == [
        ("train_0001", "train/0001", {"png": b"A", "cls": b"1"}),
        ("val_0001", "val/0001", {"png": b"B", "cls": b"2"}),
        ("v1_0_x", "v1.0/x", {"y.png": b"C"})]
    result = pipeline("a2d-read data.tar | a2d-write --format webdataset out/ && a2d-read out/ | wc -l")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"3"
    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        assert "train_0001.png" in tar.getnames()


def test_the_same_key_twice_in_a_row_is_still_refused(tmp_path):
    _tar(tmp_path / "data.tar", [("a/0001.png", b"A"), ("a/0001.png", b"B")])
    with pytest.raises(BadInput, match="sample a/0001 has two .png members"):
        list(read([str(tmp_path / "data.tar")]))


# --- 7: csv fields past the csv module's 128 KiB default ------------------------------------------

def test_csv_fields_over_128_kib(tmp_path):
    caption = "word " * 60000  # 300 KB
    url = "data:image/png;base64," + "A" * 400000
    path = tmp_path / "urls.csv"
    path.write_text(f'url,caption\n"{url}","{caption}"\n')
    assert list(read([str(path)])) == [{"url": url, "caption": caption}]


# --- 11: a byte-order mark is not part of the first column or URL ---------------------------------

BOM = "\ufeff"


@pytest.mark.parametrize("name, text, expected", [
    ("a.csv", "url,caption\nhttp://x/1,one\n", [{"url": "http://x/1", "caption": "one"}]),
    ("a.tsv", "url\tcaption\nhttp://x/1\tone\n", [{"url": "http://x/1", "caption": "one"}]),
    ("a.txt", "http://x/1\nhttp://x/2\n", [{"url": "http://x/1"}, {"url": "http://x/2"}]),
    ("a.json", '[{"url": "http://x/1"}]', [{"url": "http://x/1"}]),
    ("a.jsonl", '{"url": "http://x/1"}\n', [{"url": "http://x/1"}]),
])
@pytest.mark.parametrize("compression", ["", ".gz", ".zst"])
def test_byte_order_mark_is_dropped(tmp_path, name, text, expected, compression):
    data = (BOM + text).encode("utf-8")
    if compression == ".gz":
        data = gzip.compress(data)
    elif compression == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path = tmp_path / (name + compression)
    path.write_bytes(data)
    assert list(read([str(path)])) == expected


def test_byte_order_mark_on_stdin(cli):
    result = cli(read_command.main, [], input=(BOM + "http://x/1\n").encode("utf-8"))
    assert result.exit_code == 0, result.stderr
    assert records_of(result) == [{"url": "http://x/1"}]


# --- 12: other encodings, the row of a decoding error, and --on-error skip ------------------------

def _latin1_csv(tmp_path):
    path = tmp_path / "urls.csv"
    path.write_bytes("url,caption\nhttp://x/1,plain\nhttp://x/2,café\nhttp://x/3,fine\nhttp://x/4,naïve\n"
                     .encode("latin-1"))
    return path


def test_latin1_csv_names_the_row_and_reads_with_encoding(cli, tmp_path):
    path = _latin1_csv(tmp_path)
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line.startswith(f"a2d-read: error: {path}:3: not valid utf-8 text (byte 0xe9)")
    assert "--encoding" in line
    result = cli(read_command.main, [str(path), "--encoding", "latin-1"])
    assert result.exit_code == 0, result.stderr
    assert [r["caption"] for r in records_of(result)] == ["plain", "café", "fine", "naïve"]


def test_on_error_skip_drops_bad_rows_warns_once_per_file_and_counts(cli, tmp_path):
    path = _latin1_csv(tmp_path)
    other = tmp_path / "more.jsonl"
    other.write_text('{"url": "http://y/1"}\nnot json\n{"url": ["http://y/3"]}\n{"url": "http://y/4"}\n')
    result = cli(read_command.main, [str(path), str(other), "--on-error", "skip"])
    assert result.exit_code == 0, result.stderr
    assert [r["url"] for r in records_of(result)] == ["http://x/1", "http://x/3", "http://y/1", "http://y/4"]
    warnings = result.stderr.strip().splitlines()
    assert warnings[0].startswith(f"a2d-read: warning: {path}:3: not valid utf-8 text (byte 0xe9)")
    assert warnings[1].startswith(f"a2d-read: warning: {other}:2: not valid JSON")
    assert warnings[2].startswith("a2d-read: warning: skipped 4 bad input line(s); first: ")
    assert len(warnings) == 4 and warnings[3] == "a2d-read: 4 records"


@pytest.mark.parametrize("name", ["urls.txt", "urls.jsonl", "urls.tsv.gz"])
def test_undecodable_rows_of_other_text_formats(cli, tmp_path, name):
    rows = {"urls.txt": [b"http://x/1", b"http://x/\xff", b"http://x/3"],
            "urls.jsonl": [b'{"url": "http://x/1"}', b'{"url": "http://x/\xff"}', b'{"url": "http://x/3"}'],
            "urls.tsv.gz": [b"url", b"http://x/1", b"http://x/\xff", b"http://x/3"]}[name]
    data = b"\n".join(rows) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    line = one_error_line(cli(read_command.main, [str(path)]))
    bad_row = rows.index(next(row for row in rows if b"\xff" in row)) + 1
    assert line.startswith(f"a2d-read: error: {path}:{bad_row}: not valid utf-8 text (byte 0xff)")
    result = cli(read_command.main, [str(path), "--on-error", "skip"])
    assert result.exit_code == 0
    assert [r["url"] for r in records_of(result)] == ["http://x/1", "http://x/3"]


def test_undecodable_json_array_names_its_line(cli, tmp_path):
    path = tmp_path / "urls.json"
    path.write_bytes(b'[{"url": "http://x/1"},\n {"url": "http://x/\xe9"}]')
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line.startswith(f"a2d-read: error: {path}:2: not valid utf-8 text (byte 0xe9)")
    result = cli(read_command.main, [str(path), "--encoding", "latin-1"])
    assert records_of(result) == [{"url": "http://x/1"}, {"url": "http://x/é"}]


def test_unknown_encoding_is_a_usage_error(cli, tmp_path):
    path = _latin1_csv(tmp_path)
    result = cli(read_command.main, [str(path), "--encoding", "klingon"])
    assert result.exit_code == 2 and "klingon" in result.stderr


# --- 13: corrupt and cut-short inputs are bad input, named ----------------------------------------

CSV = b"url,caption\n" + b"".join(b"http://x/%d,caption %d\n" % (i, i) for i in range(20000))


def _truncated_parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"url": ["http://x/%d" % i for i in range(1000)]}), sink)
    return sink.getvalue()[:-100]


def _tar_of_pngs(mode: str, data: bytes) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode=mode) as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"{i:04d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sink.getvalue()


# name -> a maker of that file's damaged bytes
CORRUPT = {
    "truncated.csv.gz": lambda: gzip.compress(CSV)[:-2000],
    "garbage.csv.gz": lambda: b"this is not gzip data at all\n" * 10,
    "truncated.csv.bz2": lambda: bz2.compress(CSV)[:-2000],
    "truncated.csv.xz": lambda: lzma.compress(CSV)[:-2000],
    "truncated.csv.zst": lambda: zstandard.ZstdCompressor().compress(CSV)[:-2000],
    "garbage.parquet": lambda: b"PAR1 is not enough " * 10,
    "truncated.parquet": _truncated_parquet,
    "garbage.arrow": lambda: b"not arrow" * 10,
    "truncated.tar": lambda: _tar_of_pngs("w", b"x" * 5000)[:7000],
    "truncated.tar.gz": lambda: _tar_of_pngs("w:gz", bytes(range(256)) * 40)[:-300],
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_inputs_are_bad_input_naming_the_file(cli, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CORRUPT[name]())
    line = one_error_line(cli(read_command.main, [str(path)]))
    assert line.startswith(f"a2d-read: error: {path}:")


def test_zstd_of_several_frames_is_read_whole(tmp_path):
    path = tmp_path / "urls.txt.zst"
    path.write_bytes(b"".join(zstandard.ZstdCompressor().compress(b"http://x/%d\n" % i) for i in range(3)))
    assert [r["url"] for r in read([str(path)])] == ["http://x/0", "http://x/1", "http://x/2"]


def test_tar_members_under_dot_slash_keep_plain_keys_and_bad_metadata_is_named(cli, tmp_path):
    _tar(tmp_path / "00000.tar", [("./0001.png", b"A"), ("./0002.png", b"B")])
    assert [(r["key"], "wds_key" in r) for r in read([str(tmp_path / "00000.tar")])] == [
        ("0001", False), ("0002", False)]
    (tmp_path / "00000.parquet").write_bytes(b"not parquet at all")
    line = one_error_line(cli(read_command.main, [str(tmp_path / "00000.tar")]))
    assert line.startswith(f"a2d-read: error: {tmp_path / '00000.tar'}: its metadata {tmp_path / '00000.parquet'} "
                           f"is corrupt or cut short (ArrowInvalid:")


def test_dates_durations_and_decimals_in_a_parquet_list_pass_as_text_or_seconds(pipeline, tmp_path):
    import datetime
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "url": ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
        "when": [datetime.datetime(2024, 1, 2, 3, 4, 5), None], "day": [datetime.date(2024, 1, 2), None],
        "amount": [decimal.Decimal("1.50"), None], "took": [datetime.timedelta(seconds=3), None],
    }), tmp_path / "dated.parquet")
    result = pipeline("a2d-read dated.parquet | a2d-shard | a2d-write --format webdataset out/")
    assert result.returncode == 0, result.stderr
    first = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()[0]
    assert (first["when"], first["day"], first["amount"], first["took"]) == ("2024-01-02T03:04:05", "2024-01-02",
                                                                              "1.50", 3.0)
