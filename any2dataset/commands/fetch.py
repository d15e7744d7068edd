"""a2d-fetch: download every record's URL."""

import click

from ..cli import command, common_options, input_paths_argument, on_error_option
from ..fetch import DEFAULT_USER_AGENT, HASHES, FetchOptions, fetch
from ..streams import RecordReader, RecordWriter


@command(
    "a2d-fetch",
    "download the URL of every record",
    "Download the url of every record and print the records with their payload, or with the "
    "reason they failed (status, error_kind, error_message). Every input record comes out once, "
    "in the order downloads finish.",
    "a2d-read urls.txt | a2d-fetch -j 128 --timeout 10 > records.jsonl",
)
@input_paths_argument
@click.option("-j", "--concurrency", default=64, show_default=True, type=click.IntRange(1),
              help="Downloads in flight at once.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Seconds to connect, and at most between two reads.")
@click.option("--deadline", default=60.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Seconds for a whole request, body included.")
@click.option("--max-size", default=100 * 1024 * 1024, show_default=True, type=click.IntRange(1),
              help="Largest body in bytes; larger ones fail as too_large without being read whole.")
@click.option("--hash", "hash_name", type=click.Choice([*HASHES, "none"]), default="sha256", show_default=True,
              help="Hash of the downloaded bytes, stored under its name.")
@click.option("--user-agent", default=DEFAULT_USER_AGENT, show_default=True, help="User-Agent header.")
@on_error_option
@click.option("-o", "--output", default="-", show_default=True, help="Where records go.")
@common_options
def main(inputs, concurrency, timeout, deadline, max_size, hash_name, user_agent, on_error, output, console):
    console.waiting_on_terminal(inputs)
    reader = RecordReader(inputs, on_error=on_error)
    options = FetchOptions(concurrency=concurrency, timeout=timeout, deadline=deadline, max_size=max_size,
                           user_agent=user_agent, hash=None if hash_name == "none" else hash_name)
    successes = 0
    with RecordWriter(output) as out:
        for record in console.track(fetch(reader, options)):
            successes += record.get("status") == "success"
            out.write(record)
    console.skipped(reader)
    console.info(f"{out.count} records, {successes} downloaded, {out.count - successes} failed")


if __name__ == "__main__":
    main()
