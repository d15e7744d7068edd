"""a2d-read: turn URL lists, existing datasets and folders of files into records."""

import click

from .. import read as reading
from ..cli import command, common_options, input_paths_argument, on_error_option, output_option
from ..streams import RecordWriter


def _column_list(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


@command(
    "a2d-read",
    "read URL lists, datasets and folders into records",
    "Read URL lists (txt, csv, tsv, json, jsonl, parquet, arrow; optionally compressed), existing "
    "datasets (webdataset tars, the files layout, parquet of records) or folders of raw files, from "
    "local or fsspec paths, globs, brace patterns, folders or - for stdin, and print one record per row.",
    "a2d-read urls.csv | a2d-fetch -j 64 | a2d-write --format webdataset out/",
)
@input_paths_argument
@click.option("--input-format", type=click.Choice(reading.FORMATS),
              help="Format of every input (default: from the file name; stdin is txt).")
@click.option("--url-col", default="url", show_default=True, help="Column holding the URL.")
@click.option("--caption-col", default=None, help="Column holding the caption (default: 'caption' if present; "
              "'' for no caption, as img2dataset without caption_col).")
@click.option("--clip-col", default=None,
              help="Column holding clips, [[start, end], ...] in seconds; becomes the clips field.")
@click.option("--save-additional-columns", default=None, metavar="A,B,...",
              help="Keep only these other columns (default: keep every other column).")
@click.option("--inline", is_flag=True, help="With --input-format raw: put each file's bytes in its record.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Encoding of text lists (txt, csv, tsv, json, jsonl), e.g. latin-1; a byte-order mark is dropped.")
@click.option("--file-field", metavar="NAME", help="Add each row's input file under this field (with a2d-shard "
              "--new-shard-on NAME, every input file starts a new shard, as in img2dataset).")
@on_error_option
@output_option()
@common_options
def main(inputs, output, console, **params):
    options = read_options(**params)
    console.waiting_on_terminal(inputs, "a list of URLs, one per line,")
    bad_rows = reading.BadRows(options.on_error, console.warn)
    with RecordWriter(output) as out:
        count = out.write_all(console.track(reading.read(inputs or ["-"], options, bad_rows)))
    console.skipped(bad_rows)
    if not count and not bad_rows.skipped:
        console.warn(f"no rows in {', '.join(inputs) if inputs else 'standard input'}")
    console.info(f"{count} records")


def read_options(*, input_format, url_col, caption_col, clip_col, save_additional_columns, inline,
                 encoding="utf-8", on_error="fail", file_field=None, **_other) -> reading.ReadOptions:
    """The command's parameters (as click parsed them) as ReadOptions."""
    return reading.ReadOptions(input_format=input_format, url_col=url_col, caption_col=caption_col,
                               clip_col=clip_col, save_additional_columns=_column_list(save_additional_columns),
                               inline=inline, encoding=encoding, on_error=on_error, file_field=file_field)


if __name__ == "__main__":
    main()
