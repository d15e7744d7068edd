"""img2dataset's calls, as its documentation writes them, give img2dataset's outputs."""

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
