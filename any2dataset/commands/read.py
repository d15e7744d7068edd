"""a2d-read: turn URL lists into records."""

import click

from .. import read as reading
from ..cli import command, common_options, input_paths_argument
from ..streams import RecordWriter


@command(
    "a2d-read",
    "read URL lists into records",
    "Read URL lists (txt, csv, tsv; optionally compressed; local or any fsspec path, globs, "
    "brace patterns, folders, - for stdin) and print one record per row.",
    "a2d-read urls.csv | a2d-fetch -j 64 | a2d-write --format webdataset out/",
)
@input_paths_argument
@click.option("--input-format", type=click.Choice(sorted(reading.FORMATS)),
              help="Format of every input (default: from the file name; stdin is txt).")
@click.option("--url-col", default="url", show_default=True, help="Column holding the URL.")
@click.option("--caption-col", default=None, help="Column holding the caption (default: 'caption' if present).")
@click.option("--save-additional-columns", default=None, metavar="A,B,...",
              help="Keep only these other columns (default: keep every other column).")
@click.option("-o", "--output", default="-", show_default=True, help="Where records go.")
@common_options
def main(inputs, input_format, url_col, caption_col, save_additional_columns, output, console):
    extra = [name.strip() for name in save_additional_columns.split(",") if name.strip()] \
        if save_additional_columns is not None else None
    records = reading.read(inputs or ["-"], input_format=input_format, url_col=url_col,
                           caption_col=caption_col, save_additional_columns=extra)
    with RecordWriter(output) as out:
        count = out.write_all(console.track(records))
    console.info(f"{count} records")


if __name__ == "__main__":
    main()
