"""a2d-write: write records into dataset shards."""

import click

from ..cli import command, common_options, input_paths_argument, on_error_option
from ..streams import RecordReader
from ..write import FORMATS, WriteOptions, write


@command(
    "a2d-write",
    "write records into dataset shards",
    "Write records into shards in OUTPUT_FOLDER: {shard}.tar (webdataset), plus for every shard "
    "{shard}.parquet with the metadata of every row (failures included) and {shard}_stats.json, "
    "written last. Shards are written under hidden names and renamed when whole.",
    "a2d-read urls.csv | a2d-fetch | a2d-write --format webdataset out/",
)
@click.argument("output_folder")
@input_paths_argument
@click.option("--format", "output_format", type=click.Choice(sorted(FORMATS)), default="webdataset",
              show_default=True, help="Output format.")
@click.option("--number-sample-per-shard", default=10000, show_default=True, type=click.IntRange(1),
              help="Rows per shard, for records that arrive without a shard.")
@click.option("--oom-shard-count", default=5, show_default=True, type=click.IntRange(1),
              help="Digits of shard numbers in file names and keys.")
@click.option("--start-shard", default=0, show_default=True, type=click.IntRange(0),
              help="First shard number, for records that arrive without a shard.")
@click.option("--max-open-shards", default=64, show_default=True, type=click.IntRange(1),
              help="Shards being filled at once before records out of order are an error.")
@on_error_option
@common_options
def main(output_folder, inputs, output_format, number_sample_per_shard, oom_shard_count, start_shard,
         max_open_shards, on_error, console):
    console.waiting_on_terminal(inputs)
    reader = RecordReader(inputs, on_error=on_error, decode=True)
    options = WriteOptions(output_format=output_format, number_sample_per_shard=number_sample_per_shard,
                           oom_shard_count=oom_shard_count, start_shard=start_shard,
                           max_open_shards=max_open_shards)
    shards = rows = successes = 0
    for stats in console.track(write(reader, output_folder, options, on_bad_record=reader.bad), unit="shard"):
        shards += 1
        rows += stats["count"]
        successes += stats["successes"]
    console.skipped(reader)
    console.info(f"{shards} shards, {rows} rows, {successes} samples written to {output_folder}")


if __name__ == "__main__":
    main()
