"""Every output format is one Sink (write/sink.py) that the shard writer uses through the interface."""

import pytest

from any2dataset.write import FORMATS, WriteOptions, write
from any2dataset.write.dummy import DummySink
from any2dataset.write.metadata import MetadataSchema
from any2dataset.write.sink import Sink, SinkSettings


def test_every_format_is_a_sink():
    assert all(issubclass(sink, Sink) for sink in FORMATS.values())
    assert [name for name, sink in FORMATS.items() if sink.payloads_in_metadata] == ["parquet"]
    assert FORMATS["dummy"].suffixes == () and FORMATS["webdataset"].suffixes == (".tar", ".parquet")


@pytest.mark.parametrize("keep_failed, samples", [(False, 1), (True, 2)])
def test_dummy_counts_the_samples_it_would_store(keep_failed, samples):
    sink = DummySink(lambda suffix: pytest.fail("the dummy format opens no file"),
                     SinkSettings(MetadataSchema(), 2, keep_failed))
    sink.add({"key": "0", "status": "success"}, True)
    sink.add({"key": "1", "status": "failed_to_download"}, False)
    assert sink.finish(2) == samples


@pytest.mark.parametrize("output_format", sorted(FORMATS))
def test_finished_shards_publish_the_files_of_their_sink(tmp_path, output_format):
    records = [{"url": f"u{i}", "status": "success" if i else "failed_to_download", "files": {"jpg": b"x"}}
               for i in range(3)]
    for record in records[:1]:
        del record["files"]
    [stats] = write(records, str(tmp_path), WriteOptions(output_format=output_format, number_sample_per_shard=3))
    assert stats["samples"] == 2
    expected = {f"00000{suffix}" for suffix in FORMATS[output_format].suffixes} | {"00000_stats.json"}
    assert {p.name for p in tmp_path.iterdir()} == expected
