"""a2d-read: txt, csv, tsv, compressed, globs, folders, columns, and s3:// through a real S3 server."""

import gzip
import subprocess
import sys

import orjson
import pytest

from any2dataset.commands import read as read_command
from any2dataset.errors import BadInput, UsageProblem
from any2dataset.read import ReadOptions, read


def lines(result):
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_txt_skips_blank_lines_and_keeps_order(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("http://a/1\n\n  http://a/2  \nhttp://a/3")
    assert list(read([str(path)])) == [{"url": "http://a/1"}, {"url": "http://a/2"}, {"url": "http://a/3"}]


def test_csv_maps_url_caption_and_keeps_other_columns(tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text('link,text,score\nhttp://a/1,"a, quoted\ncaption",0.5\n,no url,\n')
    records = list(read([str(path)], ReadOptions(url_col="link", caption_col="text")))
    assert records == [
        {"url": "http://a/1", "caption": "a, quoted\ncaption", "score": "0.5"},
        {"url": None, "caption": "no url", "score": None},  # kept: it will fail as invalid_url
    ]


def test_default_caption_column_and_save_additional_columns(tmp_path):
    path = tmp_path / "urls.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("url\tcaption\ta\tb\nhttp://x/1\thi\t1\t2\n")
    assert list(read([str(path)], ReadOptions(save_additional_columns=["b"]))) == [
        {"url": "http://x/1", "caption": "hi", "b": "2"}]


def test_globs_braces_and_folders_in_sorted_order(tmp_path):
    for i in (2, 0, 1):
        (tmp_path / f"part-{i}.txt").write_text(f"http://x/{i}\n")
    (tmp_path / ".hidden.txt").write_text("http://x/hidden\n")
    urls = lambda paths: [r["url"] for r in read(paths)]  # noqa: E731
    assert urls([str(tmp_path / "part-*.txt")]) == ["http://x/0", "http://x/1", "http://x/2"]
    assert urls([str(tmp_path / "part-{2,0}.txt")]) == ["http://x/2", "http://x/0"]
    assert urls([str(tmp_path)]) == ["http://x/0", "http://x/1", "http://x/2"]


def test_missing_column_lists_the_columns(cli, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("URL,TEXT\nhttp://x,y\n")
    result = cli(read_command.main, [str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"a2d-read: error: {path}: no column 'url' for --url-col (columns: URL, TEXT)"


def test_reserved_column_names_are_refused(tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,status\nhttp://x,ok\n")
    with pytest.raises(UsageProblem, match="column 'status' is a reserved record field"):
        list(read([str(path)]))


def test_ragged_csv_is_bad_input_with_its_line(cli, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text("url,caption\nhttp://x,a\nhttp://y,b,extra\n")
    result = cli(read_command.main, [str(path)])
    assert result.exit_code == 3
    assert result.stderr.strip() == f"a2d-read: error: {path}:3: row has 3 fields but the header has 2"


def test_unknown_format_asks_for_input_format(cli, tmp_path):
    path = tmp_path / "urls.dat"
    path.write_text("http://x\n")
    result = cli(read_command.main, [str(path)])
    assert result.exit_code == 2 and "--input-format" in result.stderr
    result = cli(read_command.main, [str(path), "--input-format", "txt"])
    assert lines(result) == [{"url": "http://x"}]


def test_stdin_is_txt_by_default(cli):
    result = cli(read_command.main, ["-"], input=b"http://x/1\nhttp://x/2\n")
    assert lines(result) == [{"url": "http://x/1"}, {"url": "http://x/2"}]


def test_reads_csv_from_s3(s3, pipeline, s3_server):
    s3.pipe("test-bucket/lists/urls.csv", b"url,caption\nhttp://x/1,one\nhttp://x/2,two\n")
    s3.pipe("test-bucket/lists/more.csv.gz", gzip.compress(b"url,caption\nhttp://x/3,three\n"))
    records = list(read(["s3://test-bucket/lists/*.csv*"]))
    assert [r["caption"] for r in records] == ["three", "one", "two"]  # sorted: more.csv.gz first
    # The same through the real command in a subprocess, configured by environment only.
    result = pipeline("a2d-read s3://test-bucket/lists/urls.csv", env=s3_server.env)
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["url"] for line in result.stdout.splitlines()] == ["http://x/1", "http://x/2"]


ROWS = [
    {"url": "http://x/0.jpg", "caption": "zero", "score": 0.5},
    {"url": "http://x/1.jpg", "caption": None, "score": 1.5},
    {"url": None, "caption": "no url", "score": None},
]


def write_list(path, fmt):
    """ROWS in one of the list formats (before compression)."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(ROWS)
    if fmt == "csv" or fmt == "tsv":
        sep = "," if fmt == "csv" else "\t"
        cell = lambda v: "" if v is None else str(v)  # noqa: E731
        return ("url{0}caption{0}score\n".format(sep) +
                "".join(sep.join(cell(r[k]) for k in ("url", "caption", "score")) + "\n" for r in ROWS)).encode()
    if fmt == "json":
        return orjson.dumps(ROWS)
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r) + b"\n" for r in ROWS)
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        feather.write_feather(table, sink)
    return sink.getvalue().to_pybytes()


def compress(data, suffix):
    import bz2
    import lzma

    import zstandard

    return {"": lambda d: d, ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
            ".zst": lambda d: zstandard.ZstdCompressor().compress(d)}[suffix](data)


@pytest.mark.parametrize("compression", ["", ".gz", ".bz2", ".xz", ".zst"])
@pytest.mark.parametrize("fmt, name", [("csv", "l.csv"), ("tsv", "l.tsv"), ("json", "l.json"), ("jsonl", "l.jsonl"),
                                       ("parquet", "l.parquet"), ("arrow", "l.feather"), ("arrow", "l.arrow")])
def test_every_list_format_and_compression(tmp_path, fmt, name, compression):
    path = tmp_path / (name + compression)
    path.write_bytes(compress(write_list(path, fmt), compression))
    records = list(read([str(path)]))
    expected = [dict(r) for r in ROWS]
    if fmt in ("csv", "tsv"):  # text formats keep values as text
        for r in expected:
            r["score"] = None if r["score"] is None else str(r["score"])
    assert records == expected


def test_input_format_overrides_the_name(cli, tmp_path):
    path = tmp_path / "list.data"
    path.write_bytes(write_list(path, "jsonl"))
    result = cli(read_command.main, [str(path), "--input-format", "jsonl"])
    assert [r["url"] for r in lines(result)] == ["http://x/0.jpg", "http://x/1.jpg", None]


def test_jsonl_rows_may_lack_or_add_fields(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text('{"url": "a", "x": 1}\n{"url": "b"}\n{"url": "c", "x": 3, "y": true}\n')
    assert list(read([str(path)])) == [{"url": "a", "x": 1}, {"url": "b", "x": None}, {"url": "c", "x": 3, "y": True}]
    only_x = list(read([str(path)], ReadOptions(save_additional_columns=["x"])))
    assert only_x[2] == {"url": "c", "x": 3}


def test_bad_jsonl_line_is_located(cli, tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text('{"url": "a"}\n\n{"url": \n')
    result = cli(read_command.main, [str(path)])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"a2d-read: error: {path}:3: not valid JSON")


def test_clip_column_becomes_clips(tmp_path):
    path = tmp_path / "videos.csv"
    path.write_text('url,spans\nhttp://x/v.mp4,"[[0, 5.5], [10, 12]]"\nhttp://x/w.mp4,\n')
    records = list(read([str(path)], ReadOptions(clip_col="spans")))
    assert records == [{"url": "http://x/v.mp4", "clips": [[0, 5.5], [10, 12]]},
                       {"url": "http://x/w.mp4", "clips": None}]
    path.write_text('url,spans\nhttp://x/v.mp4,"not json"\n')
    with pytest.raises(BadInput, match="clip column"):
        list(read([str(path)], ReadOptions(clip_col="spans")))


def test_parquet_reads_only_the_columns_it_needs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"URL": ["http://x/1"], "TEXT": ["hi"], "big": [b"x" * 1000], "n": [3]}), path)
    records = list(read([str(path)], ReadOptions(url_col="URL", caption_col="TEXT", save_additional_columns=["n"])))
    assert records == [{"url": "http://x/1", "caption": "hi", "n": 3}]


def test_raw_folder_with_and_without_inline(tmp_path):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "a.JPEG").write_bytes(b"jpeg bytes")
    (tmp_path / "photos" / "sub" / "b.wav").write_bytes(b"wav bytes")
    (tmp_path / "photos" / ".hidden").write_bytes(b"no")
    plain = list(read([str(tmp_path / "photos")], ReadOptions(input_format="raw")))
    assert [r["url"] for r in plain] == [str(tmp_path / "photos" / "a.JPEG"),
                                         str(tmp_path / "photos" / "sub" / "b.wav")]
    inline = list(read([str(tmp_path / "photos")], ReadOptions(input_format="raw", inline=True)))
    assert inline[0]["files"] == {"jpg": b"jpeg bytes"} and inline[0]["status"] == "success"
    assert inline[1]["files"] == {"wav": b"wav bytes"} and inline[1]["size"] == 9


def test_raw_folder_on_s3(s3):
    s3.pipe("test-bucket/raw/one.png", b"png one")
    s3.pipe("test-bucket/raw/two.png", b"png two")
    records = list(read(["s3://test-bucket/raw/"], ReadOptions(input_format="raw", inline=True)))
    assert [(r["url"], r["files"]) for r in records] == [
        ("s3://test-bucket/raw/one.png", {"png": b"png one"}), ("s3://test-bucket/raw/two.png", {"png": b"png two"})]


def test_folder_of_lists_skips_other_files(tmp_path):
    (tmp_path / "a.csv").write_text("url\nhttp://x/a\n")
    (tmp_path / "b.txt").write_text("http://x/b\n")
    (tmp_path / "README").write_text("not a list\n")
    assert [r["url"] for r in read([str(tmp_path)])] == ["http://x/a", "http://x/b"]


@pytest.mark.parametrize("stage", ["read", "shard", "fetch"])
def test_stages_before_writing_do_not_import_pyarrow_for_a_text_list(stage, tmp_path):
    # pyarrow costs ~45 MiB and a fifth of a second per process; a URL list or records don't need it.
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    code = (f"import sys; from any2dataset.commands import {stage} as command; "
            "sys.argv = ['a2d', '-q'] + sys.argv[1:]\n"
            "try:\n    command.main()\nexcept SystemExit:\n    pass\n"
            "print('pyarrow' in sys.modules)")
    arguments = [str(tmp_path / "urls.txt")] if stage == "read" else []
    stdin = b"" if stage == "read" else b'{"url": "data:,x"}\n'
    result = subprocess.run([sys.executable, "-c", code, *arguments], input=stdin, capture_output=True,
                            cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-1] == "False", result.stdout


def test_cut_short_says_how_far_reading_got():
    from any2dataset.read import _cut_short

    error = EOFError("Compressed file ended before the end-of-stream marker was reached")
    assert str(_cut_short(error, "a.csv.gz", 12, 0)).startswith("a.csv.gz: corrupt or cut short after row 12 (EOFError")
    assert "after 1 record (" in str(_cut_short(error, "d.parquet", None, 1))
    assert "after 3 records (" in str(_cut_short(error, "d.parquet", None, 3))
    assert "corrupt or cut short (EOFError" in str(_cut_short(error, "d.parquet", None, 0))
