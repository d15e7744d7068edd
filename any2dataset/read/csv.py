"""csv and tsv with a header row, streamed with the standard csv module (bounded memory).

Values stay strings; an empty cell is null, as pandas gives img2dataset users.
"""

import csv
import functools
import operator

from .. import record as rec
from ..errors import BadInput
from .table import EMPTY, Bad, Table, TextDecoding

# The csv module refuses fields over 128 KiB by default; a data: URL or a long caption is
# more. A field may be as long as a record line.
csv.field_size_limit(rec.MAX_LINE_BYTES)


def table(stream, text: TextDecoding, bad: Bad, delimiter: str = ",") -> Table:
    reader = csv.reader(stream, delimiter=delimiter)
    errors = text.errors  # bytes that were not text before this file
    try:
        header = next(reader)
    except StopIteration:
        return EMPTY
    except csv.Error as error:
        raise BadInput(f"bad CSV header: {error}", line=1) from None
    if text.errors != errors:
        text.check("\t".join(header), 1, _raise)
    columns = [name.strip() for name in header]
    return Table(columns, functools.partial(_rows, reader, columns, text, errors, bad))


def _rows(reader, columns: list[str], text: TextDecoding, errors_before: int, bad: Bad, selected):
    """The rows of the selected columns as (line, values, None); a row with too many fields, or
    that is not text, goes to `bad`. (One loop, no call per row: this runs for every row.)"""
    width = len(columns)
    pick = _picker([columns.index(name) for name in selected], width)
    start = reader.line_num + 1
    while True:
        try:
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line is not a row
                        start = reader.line_num + 1
                        continue
                    if len(row) > width:
                        bad(BadInput(f"row has {len(row)} fields but the header has {width}", line=start))
                        start = reader.line_num + 1
                        continue
                    row += [""] * (width - len(row))
                if text.errors != errors_before and not text.check("\t".join(row), start, bad):
                    start = reader.line_num + 1
                    continue
                if "" in row:
                    row = [value or None for value in row]
                yield start, pick(row), None
                start = reader.line_num + 1
            return
        except csv.Error as error:
            bad(BadInput(f"bad CSV: {error}", line=reader.line_num))
            start = reader.line_num + 1  # skipped: the reader goes on at the next line


def _raise(error: BadInput) -> None:
    raise error


def _picker(indexes: list[int], width: int):
    """The selected values of a row as a tuple, cheaply (this runs for every row)."""
    if indexes == list(range(width)):
        return tuple
    if len(indexes) == 1:
        index = indexes[0]
        return lambda row: (row[index],)
    return operator.itemgetter(*indexes)


def tsv_table(stream, text: TextDecoding, bad: Bad) -> Table:
    return table(stream, text, bad, delimiter="\t")
