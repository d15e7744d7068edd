"""a2d-shard: stable keys and shard ids, resume and fan-out."""

import click

from .. import shard as sharding
from ..cli import (
    command,
    common_options,
    input_paths_argument,
    on_error_option,
    output_option,
    shard_numbering_options,
)
from ..streams import RecordReader, RecordWriter


@command(
    "a2d-shard",
    "give records keys and shards; resume and fan out",
    "Give every record its shard, key and shard_size by input position, with img2dataset's key formula "
    "(shard * 10^ceil(log10 N) + row, zero-padded). Records that already have all three keep them. "
    "--part and --skip-done keep only some shards; --split writes one JSONL file per shard for fan-out.",
    "a2d-read urls.csv | a2d-shard --skip-done out/ | a2d-fetch | a2d-write out/",
)
@input_paths_argument
@shard_numbering_options("Rows per shard (N).", "First shard number.")
@click.option("--extend", metavar="OUTPUT_FOLDER",
              help="Start numbering after the last shard already in this output folder.")
@click.option("--skip-done", metavar="OUTPUT_FOLDER",
              help="Leave out shards already finished in this output folder (local or s3://...), after "
                   "checking they were written from the same rows.")
@click.option("--part", metavar="I/N",
              help="Keep only shards with shard % N == I, so N processes or hosts cover the input once.")
@click.option("--split", "split_folder", metavar="FOLDER",
              help="Write one JSONL file per shard into FOLDER instead of standard output.")
@click.option("--shards-per-file", default=1, show_default=True, type=click.IntRange(1),
              help="With --split: shards per file.")
@click.option("--new-shard-on", metavar="FIELD", help="Start a new shard whenever FIELD changes value (with "
              "a2d-read --file-field FIELD: each input file starts on a new shard, as in img2dataset).")
@on_error_option
@output_option()
@common_options
def main(inputs, split_folder, shards_per_file, on_error, output, console, **params):
    console.waiting_on_terminal(inputs)
    options = shard_options(**params, on_unreadable=console.warn)
    if options.done:
        console.info(f"{len(options.done)} finished shard(s) in {params['skip_done']}: each is left out once its "
                     f"rows are checked against this input")
    reader = RecordReader(inputs, on_error=on_error)
    records = console.track(sharding.shard(reader, options))
    if split_folder:
        files = sharding.split(records, split_folder, shards_per_file, options.oom_shard_count)
        console.skipped(reader)
        console.info(f"{len(files)} file(s) written to {split_folder}")
        return
    with RecordWriter(output) as out:
        out.write_all(records)
    console.skipped(reader)
    console.info(f"{reader.count} records read, {out.count} written")


def shard_options(*, number_sample_per_shard, oom_shard_count, start_shard, extend, skip_done, part,
                  on_unreadable=None, new_shard_on=None, **_other) -> sharding.ShardOptions:
    """The command's parameters (as click parsed them) as ShardOptions."""
    return sharding.shard_settings(number_sample_per_shard=number_sample_per_shard, oom_shard_count=oom_shard_count,
                                   start_shard=start_shard, extend=extend, skip_done=skip_done, part=part,
                                   on_unreadable=on_unreadable, new_shard_on=new_shard_on)


if __name__ == "__main__":
    main()
