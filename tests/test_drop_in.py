"""img2dataset's calls, as its documentation writes them, give img2dataset's outputs."""

import orjson
import pyarrow.parquet as pq
import pytest

import any2dataset
from any2dataset.errors import UsageProblem


@pytest.fixture
def bin_list(http_server, tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("".join(f"{http_server.url(f'dropin/{i}.bin', size=100 + i)}\n" for i in range(3)))
    return path


def test_download_takes_img2dataset_arguments_by_position(bin_list, tmp_path):
    # download(url_list, image_size, output_folder, processes_count, resize_mode, ...), img2dataset's order
    report = any2dataset.download(str(bin_list), 256, str(tmp_path / "out"), 1, "border", output_format="webdataset",
                                  disable_all_reencoding=True, quiet=True)
    assert report["samples"] == 3 and (tmp_path / "out" / "00000.tar").exists()
    with pytest.raises(UsageProblem, match="output_folder both by position and by name"):
        any2dataset.download(str(bin_list), 256, str(tmp_path / "x"), output_folder="y")


def test_dummy_writes_nothing_but_stats(bin_list, tmp_path):
    report = any2dataset.download(url_list=str(bin_list), output_folder=str(tmp_path / "out"), output_format="dummy",
                                  disable_all_reencoding=True, quiet=True)
    assert report["samples"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000_stats.json"]


def test_disallowed_header_directives_none_means_img2dataset_four_and_empty_means_none(http_server, tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text(http_server.url("dropin/robots.bin", robots="noai") + "\n")
    for value, expected in ((None, "failed_to_download"), ([], "success")):
        out = tmp_path / f"out{expected}"
        any2dataset.download(url_list=str(path), output_folder=str(out), disallowed_header_directives=value,
                             disable_all_reencoding=True, quiet=True, output_format="webdataset")
        assert pq.read_table(out / "00000.parquet").column("status").to_pylist() == [expected]


def test_the_command_takes_them_by_position_too(pipeline, bin_list, tmp_path):
    result = pipeline(f"any2dataset {bin_list} 64 out --disable_all_reencoding True --output_format webdataset")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "00000.tar").exists()
    wrong = pipeline(f"any2dataset {bin_list} big out")
    assert wrong.returncode == 2
    assert wrong.stderr == b"any2dataset: error: image_size (given by position) must be int, not 'big'\n"


def rows_of(folder):
    import pyarrow.dataset as ds

    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table()
    return table.schema, sorted(table.to_pylist(), key=lambda row: row["key"])


def test_txt_lists_ignore_caption_and_additional_columns(bin_list, tmp_path):
    report = any2dataset.download(url_list=str(bin_list), output_folder=str(tmp_path / "out"), input_format="txt",
                                  caption_col="caption", save_additional_columns=["lang"], quiet=True,
                                  disable_all_reencoding=True, output_format="webdataset")
    assert report["samples"] == 3
    schema, _ = rows_of(tmp_path / "out")
    assert "caption" not in schema.names and "lang" not in schema.names


def test_pandas_json_layout_is_read(http_server, tmp_path):
    urls = [http_server.url(f"dropin/j{i}.bin") for i in range(12)]
    # DataFrame.to_json()'s default layout: {column: {index: value}}, indexes as text ("10" after "9")
    (tmp_path / "urls.json").write_text(orjson.dumps({
        "url": {str(i): url for i, url in enumerate(urls)},
        "caption": {str(i): f"c{i}" for i in range(12)},
    }).decode())
    any2dataset.download(url_list=str(tmp_path / "urls.json"), output_folder=str(tmp_path / "out"), input_format="json",
                         caption_col="caption", quiet=True, disable_all_reencoding=True, output_format="webdataset")
    _, rows = rows_of(tmp_path / "out")
    assert [(row["url"], row["caption"]) for row in rows] == [(url, f"c{i}") for i, url in enumerate(urls)]


def test_every_input_file_starts_a_new_shard(http_server, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    for name in ("a", "b"):
        (lists / f"{name}.txt").write_text("".join(http_server.url(f"dropin/{name}{i}.bin") + "\n" for i in range(5)))
    report = any2dataset.download(url_list=str(lists), output_folder=str(tmp_path / "out"), number_sample_per_shard=10,
                                  quiet=True, disable_all_reencoding=True, output_format="webdataset")
    assert report["shards"]["complete"] == 2
    _, rows = rows_of(tmp_path / "out")
    assert [row["key"] for row in rows] == [f"0000{s}{i}" for s in (0, 1) for i in range(5)]  # 10 a shard: 1 digit
    assert [row["url"][-6:-4] for row in rows] == [f"{n}{i}" for n in "ab" for i in range(5)]


def test_no_caption_col_means_no_captions(http_server, tmp_path):
    (tmp_path / "urls.csv").write_text("url,caption\n" + http_server.url("dropin/c.bin") + ",a caption\n")
    any2dataset.download(url_list=str(tmp_path / "urls.csv"), output_folder=str(tmp_path / "out"), quiet=True,
                         disable_all_reencoding=True, output_format="files")
    assert sorted(p.suffix for p in (tmp_path / "out" / "00000").iterdir()) == [".bin", ".json"]
    schema, _ = rows_of(tmp_path / "out")
    assert "caption" not in schema.names


def test_metadata_has_img2dataset_columns_unless_all_columns(http_server, tmp_path):
    (tmp_path / "urls.csv").write_text("url,caption,lang\n" + http_server.url("dropin/m.bin") + ",cap,en\n"
                                       + http_server.url("dropin/m404.bin", status=404) + ",gone,de\n")
    common = dict(url_list=str(tmp_path / "urls.csv"), caption_col="caption", save_additional_columns=["lang"],
                  quiet=True, disable_all_reencoding=True, output_format="webdataset")
    any2dataset.download(output_folder=str(tmp_path / "exact"), **common)
    schema, rows = rows_of(tmp_path / "exact")
    assert [(field.name, str(field.type)) for field in schema] == [
        ("lang", "string"), ("caption", "string"), ("url", "string"), ("key", "string"), ("status", "string"),
        ("error_message", "string"), ("width", "int32"), ("height", "int32"), ("original_width", "int32"),
        ("original_height", "int32"), ("exif", "string"), ("sha256", "string")]
    assert [row["status"] for row in rows] == ["success", "failed_to_download"]
    assert rows[1]["sha256"] is None and len(rows[0]["sha256"]) == 64
    stats = orjson.loads((tmp_path / "exact" / "00000_stats.json").read_bytes())
    assert stats["failed_to_resize"] == 0 and stats["failed_to_download"] == 1
    any2dataset.download(output_folder=str(tmp_path / "all"), all_columns=True, **common)
    schema, rows = rows_of(tmp_path / "all")
    assert {"size", "http_status", "error_kind", "fetch_seconds", "lang", "caption"} <= set(schema.names)


def test_stats_and_read_back_take_img2dataset_status_names(pipeline, tmp_path):
    records = b"".join(orjson.dumps(r) + b"\n" for r in [
        {"url": "http://127.0.0.1:9/a", "status": "success", "files": {"jpg": "AAAA"}, "width": 1, "height": 1},
        {"url": "http://127.0.0.1:9/b", "status": "failed_to_subsample", "error_kind": "decode_error",
         "error_message": "Image decoding error"},
    ])
    columns = "url,key,status,error_message,width,height,original_width,original_height,exif,sha256"
    written = pipeline(f"a2d-shard | a2d-write --like img2dataset --columns {columns} out/ && a2d-stats --json out/",
                       input=records)
    assert written.returncode == 0, written.stderr
    assert pq.read_table(tmp_path / "out" / "00000.parquet").column("status").to_pylist() == [
        "success", "failed_to_resize"]
    report = orjson.loads(written.stdout)
    assert report["warnings"] == [] and report["statuses"]["failed_to_subsample"] == 1
    back = pipeline("a2d-read out/")
    assert back.returncode == 0, back.stderr
    assert [orjson.loads(line)["status"] for line in back.stdout.splitlines()] == ["success", "failed_to_subsample"]
