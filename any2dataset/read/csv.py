"""csv and tsv with a header row, streamed with the standard csv module (bounded memory).

Values stay strings; an empty cell is null, as pandas gives img2dataset users.
"""

import csv
from collections.abc import Iterator

from ..errors import BadInput


def table(stream, delimiter: str = ",") -> tuple[list[str], Iterator[tuple[int, tuple]]]:
    """(columns, rows), each row with the line number where it starts."""
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], iter(())
    except csv.Error as error:
        raise BadInput(f"bad CSV header: {error}", line=1) from None
    columns = [name.strip() for name in header]
    width = len(columns)

    def rows():
        start = reader.line_num + 1
        try:
            for row in reader:
                if not row:  # a blank line is not a row
                    start = reader.line_num + 1
                    continue
                if len(row) > width:
                    raise BadInput(f"row has {len(row)} fields but the header has {width}", line=start)
                values = tuple(value if value != "" else None for value in row)
                if len(values) < width:
                    values += (None,) * (width - len(values))
                yield start, values
                start = reader.line_num + 1
        except csv.Error as error:
            raise BadInput(f"bad CSV: {error}", line=reader.line_num) from None

    return columns, rows()


def tsv_table(stream):
    return table(stream, delimiter="\t")
