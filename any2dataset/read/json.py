"""json (one array of objects) and jsonl (one object a line).

jsonl streams. A json array has to be parsed whole, so its memory grows with the
file: use jsonl (or csv, parquet) for large lists.
"""

import orjson

from .. import record as rec
from ..errors import BadInput
from .table import EMPTY, Table


def json_table(stream) -> Table:
    try:
        data = orjson.loads(stream.read())
    except orjson.JSONDecodeError as error:
        raise BadInput(f"not valid JSON ({error.args[0]})") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise BadInput("expected a JSON array of objects (use jsonl for one object a line)")
    # Every row gets every column that any row has (null where it has none).
    columns = list({name: None for row in data for name in row})

    def rows(selected):
        for row in data:
            yield None, tuple(row.get(name) for name in selected), None

    return Table(columns, rows)


def jsonl_table(stream) -> Table:
    """Columns are those of the first object; later objects may lack some (null) or add
    more (kept under their names when every column is kept)."""
    lines = enumerate(stream, 1)
    first = None
    for number, line in lines:
        if line.strip():
            first = (number, _object(line, number))
            break
    if first is None:
        return EMPTY
    columns = list(first[1])
    known = set(columns)

    def rows(selected):
        def row(number, obj):
            extra = {k: v for k, v in obj.items() if k not in known} if len(obj) > len(known) or \
                not known.issuperset(obj) else None
            return number, tuple(obj.get(name) for name in selected), extra or None

        yield row(*first)
        for number, line in lines:
            if line.strip():
                yield row(number, _object(line, number))

    return Table(columns, rows)


def _object(line, number: int) -> dict:
    if len(line) > rec.MAX_LINE_BYTES:
        raise BadInput(f"a line of {len(line)} characters is over the {rec.MAX_LINE_BYTES >> 20} MiB a row may take",
                       line=number)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise BadInput(f"not valid JSON ({error.args[0]})", line=number) from None
    if type(obj) is not dict:
        raise BadInput("expected a JSON object", line=number)
    return obj
