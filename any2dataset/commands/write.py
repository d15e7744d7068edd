"""a2d-write: write records into dataset shards."""

import click

from ..cli import (
    command,
    common_options,
    input_paths_argument,
    on_error_option,
    shard_numbering_options,
)
from ..streams import RecordReader
from ..write import FORMATS, WriteOptions, write
from ..write.metadata import LIKES


@command(
    "a2d-write",
    "write records into dataset shards",
    "Write records into shards in OUTPUT_FOLDER (a local folder or an fsspec URL such as s3://bucket/out): "
    "{shard}.tar (webdataset), {shard}/ (files), {shard}.parquet (parquet, payloads as binary columns) or "
    "{shard}.tfrecord, plus for every shard {shard}.parquet with the metadata of every row (failures "
    "included) and {shard}_stats.json, written last. Shard files are written under hidden names and "
    "renamed (or uploaded) when whole, so a shard is finished exactly when its _stats.json exists.",
    "a2d-read urls.csv | a2d-fetch | a2d-write --format webdataset out/",
)
@click.argument("output_folder")
@input_paths_argument
@click.option("--format", "output_format", type=click.Choice(sorted(FORMATS)), default="webdataset",
              show_default=True, help="Output format.")
@shard_numbering_options("Rows per shard, for records that arrive without a shard.",
                         "First shard number, for records that arrive without a shard.")
@click.option("--max-open-shards", default=64, show_default=True, type=click.IntRange(1),
              help="Shards being filled at once before records out of order are an error.")
@click.option("--keep-failed", is_flag=True,
              help="Also write the .json of failed and filtered rows into tars, tfrecords and shard folders "
                   "(their metadata is always in the shard's parquet).")
@click.option("--payload-columns", metavar="EXT,...", default="",
              help="parquet format: binary columns for these extensions in every shard (default: the "
                   "extensions of the first rows written).")
@click.option("--overwrite", is_flag=True,
              help="Replace finished shards in OUTPUT_FOLDER even when they were written from other rows "
                   "(by default that is an error; the same rows again rewrite a shard, as a resume does).")
@click.option("--index", is_flag=True,
              help="Also write shardindex.json, a wids shard index of every finished tar and its sample count.")
@click.option("--columns", metavar="A,B,...", help="The metadata's columns, in this order (.json members, "
              "tfrecord features, the metadata parquet; must include key and url). Default: every field.")
@click.option("--like", type=click.Choice(LIKES), help="Metadata as this tool writes it: img2dataset's status "
              "names (failed_to_resize), column types (int32 sizes), exif '{}' and _stats.json keys.")
@on_error_option
@common_options
def main(output_folder, inputs, on_error, console, **params):
    from ..write.metadata import use_system_memory_pool

    use_system_memory_pool()
    console.waiting_on_terminal(inputs)
    reader = RecordReader(inputs, on_error=on_error, decode=True)
    options = write_options(**params)
    shards = rows = successes = 0
    shards_written = write(reader, output_folder, options, on_bad_record=reader.bad, on_note=console.warn)
    for stats in console.track(shards_written, unit="shard"):
        shards += 1
        rows += stats["count"]
        successes += stats["successes"]
    console.skipped(reader)
    console.info(f"{shards} shards, {rows} rows, {successes} samples written to {output_folder}")


def write_options(*, output_format, number_sample_per_shard, oom_shard_count, start_shard, max_open_shards,
                  keep_failed, index, payload_columns, overwrite=False, columns=None, like=None,
                  **_other) -> WriteOptions:
    """The command's parameters (as click parsed them) as WriteOptions; the all-in-one uses it too."""
    return WriteOptions(output_format=output_format, number_sample_per_shard=number_sample_per_shard,
                        oom_shard_count=oom_shard_count, start_shard=start_shard, max_open_shards=max_open_shards,
                        keep_failed=keep_failed, index=index, overwrite=overwrite, like=like,
                        columns=None if columns is None else [c.strip() for c in columns.split(",") if c.strip()],
                        payload_columns=[ext.strip() for ext in payload_columns.split(",") if ext.strip()])


if __name__ == "__main__":
    main()
