"""a2d-read: txt, csv, tsv, compressed, globs, folders, columns, and s3:// through a real S3 server."""

import gzip

import orjson
import pytest

from any2dataset.commands import read as read_command
from any2dataset.errors import UsageProblem
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
    assert list(read([str(path)], ReadOptions(save_additional_columns=["b"]))) == [{"url": "http://x/1", "caption": "hi", "b": "2"}]


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
