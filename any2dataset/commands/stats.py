"""a2d-stats: summarise a stream of records or a finished dataset."""

import click
import fsspec
import orjson

from .. import stats as statistics
from ..cli import command, common_options, input_paths_argument, on_error_option, output_option
from ..errors import UsageProblem
from ..streams import RecordReader, RecordWriter, display_name


@command(
    "a2d-stats",
    "summarise a stream of records or a finished dataset",
    "Count records by status and error_kind, list the commonest error messages, and show bytes, "
    "payload sizes and throughput. Reads JSONL records from INPUT files or standard input; a single "
    "folder argument (local or s3://...) is read as a dataset written by a2d-write: totals from every "
    "shard's metadata parquet and _stats.json, and which shards are complete, incomplete or missing. "
    "--tee passes the records through unchanged and prints the report on standard error.",
    "a2d-fetch urls.jsonl | a2d-stats --tee | a2d-write out/ && a2d-stats out/",
)
@input_paths_argument
@click.option("--tee", is_flag=True,
              help="Pass the records through unchanged to standard output and print the report on standard "
                   "error (not with -q), so a2d-stats can sit inside a pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object, for scripts.")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write the report as one self-contained HTML page with charts.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(0), help="Error messages to list.")
@click.option("--first-shard", default=0, show_default=True, type=click.IntRange(0),
              help="For a dataset: the lowest shard number expected, when it was written with --start-shard.")
@on_error_option
@output_option("Where --tee passes the records.")
@common_options
def main(inputs, tee, as_json, html_path, top, first_shard, on_error, output, console):
    inputs = list(inputs)
    if statistics.is_dataset(inputs):
        if tee:
            raise UsageProblem("--tee passes a stream of records on; a dataset folder is not one")
        report = statistics.dataset_stats(inputs[0], top=top, first_shard=first_shard)
    else:
        console.waiting_on_terminal(inputs)
        reader = RecordReader(inputs, on_error=on_error)
        source = ", ".join(display_name(path) for path in reader.paths)
        stream_stats = statistics.StreamStats(source)
        if tee:
            with RecordWriter(output) as out:  # the input's own bytes: --tee changes nothing
                out.write_lines(console.track(statistics.tee_lines(reader.pairs(), stream_stats)))
        else:
            for _record in console.track(statistics.tally(reader, stream_stats)):
                pass
        console.skipped(reader)
        stream_stats.skipped_lines = reader.skipped
        report = stream_stats.report(top=top)
    if html_path:
        with fsspec.open(html_path, "w", encoding="utf-8") as page:
            page.write(statistics.render_html(report))
    if tee and console.quiet:
        return  # -q: nothing on stderr but errors (--html still has the report)
    text = orjson.dumps(report).decode() + "\n" if as_json else statistics.render_text(report)
    click.echo(text, err=tee, nl=False)


if __name__ == "__main__":
    main()
