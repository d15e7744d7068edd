"""csv and tsv with a header row, streamed with the standard csv module (bounded memory).

Values stay strings; an empty cell is null, as pandas gives img2dataset users.
"""

import csv
import operator

from ..errors import BadInput
from .table import EMPTY, Table


def table(stream, delimiter: str = ",") -> Table:
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return EMPTY
    except csv.Error as error:
        raise BadInput(f"bad CSV header: {error}", line=1) from None
    columns = [name.strip() for name in header]
    width = len(columns)

    def rows(selected):
        pick = _picker([columns.index(name) for name in selected], width)
        start = reader.line_num + 1
        try:
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line is not a row
                        start = reader.line_num + 1
                        continue
                    if len(row) > width:
                        raise BadInput(f"row has {len(row)} fields but the header has {width}", line=start)
                    row += [""] * (width - len(row))
                if "" in row:
                    row = [value or None for value in row]
                yield start, pick(row), None
                start = reader.line_num + 1
        except csv.Error as error:
            raise BadInput(f"bad CSV: {error}", line=reader.line_num) from None

    return Table(columns, rows)


def _picker(indexes: list[int], width: int):
    """The selected values of a row as a tuple, cheaply (this runs for every row)."""
    if indexes == list(range(width)):
        return tuple
    if len(indexes) == 1:
        index = indexes[0]
        return lambda row: (row[index],)
    return operator.itemgetter(*indexes)


def tsv_table(stream) -> Table:
    return table(stream, delimiter="\t")
