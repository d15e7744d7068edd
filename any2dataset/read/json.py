"""json (one array of objects) and jsonl (one object a line).

jsonl streams. A json array has to be parsed whole, so its memory grows with the
file: use jsonl (or csv, parquet) for large lists.
"""

import codecs

import orjson

from .. import record as rec
from ..errors import BadInput
from .table import EMPTY, Bad, Table, TextDecoding


def json_table(stream, text: TextDecoding, bad: Bad) -> Table:
    """(`stream` is binary: orjson parses UTF-8 bytes itself, fastest.) Rows are numbered by
    their place in the array; a byte that is not text is named by its line."""
    data = stream.read()
    try:
        if text.codec != "utf-8-sig":
            raise ValueError("another encoding: decode first")
        parsed = orjson.loads(data[3:] if data.startswith(codecs.BOM_UTF8) else data)
    except ValueError:  # (orjson.JSONDecodeError is one)
        errors = text.errors
        decoded = text.decode(data)
        if text.errors != errors:  # name the line of the first byte that is not text
            line = decoded.count("\n", 0, TextDecoding.first_undecodable(decoded)) + 1
            text.check(decoded, line, _raise)
        try:
            parsed = orjson.loads(decoded.removeprefix("\ufeff"))
        except orjson.JSONDecodeError as error:
            raise BadInput(f"not valid JSON ({error.args[0]})") from None
    if isinstance(parsed, dict):
        parsed = _pandas_columns(parsed)
    if not isinstance(parsed, list) or not all(isinstance(row, dict) for row in parsed):
        raise BadInput("expected a JSON array of objects, or an object of columns as pandas writes it "
                       "(use jsonl for one object a line)")
    # Every row gets every column that any row has (null where it has none).
    columns = list({name: None for row in parsed for name in row})

    def rows(selected):
        for number, row in enumerate(parsed, 1):
            yield number, tuple(row.get(name) for name in selected), None

    return Table(columns, rows)


def _pandas_columns(columns: dict) -> list[dict] | None:
    """pandas' default layout (DataFrame.to_json(): {"url": {"0": ..., "1": ...}, ...}), the one
    img2dataset's pd.read_json reads, or columns as arrays ({"url": [...], ...}), as rows."""
    if not columns:
        return []
    values = list(columns.values())
    if all(isinstance(value, list) for value in values):
        if len({len(value) for value in values}) != 1:
            raise BadInput("the columns of this JSON object have different lengths")
        return [dict(zip(columns, row)) for row in zip(*values)]
    if not all(isinstance(value, dict) for value in values):
        return None
    index = list({row: None for value in values for row in value})  # in order of first appearance
    if all(row.lstrip("-").isdigit() for row in index):
        index.sort(key=int)  # pandas reads "0", "1", "10" as numbers
    return [{name: column.get(row) for name, column in columns.items()} for row in index]


def _raise(error: BadInput) -> None:
    raise error


def jsonl_table(stream, text: TextDecoding, bad: Bad) -> Table:
    """Columns are those of the first object; later objects may lack some (null) or add
    more (kept under their names when every column is kept, and taken by --caption-col etc.
    whatever the first object had)."""
    errors = text.errors  # bytes that were not text before this file

    def objects():
        for number, line in enumerate(stream, 1):
            if line.isspace():
                continue
            if text.errors != errors and not text.check(line, number, bad):
                continue
            obj = _object(line, number, bad)
            if obj is not None:
                yield number, obj

    parsed = objects()
    first = next(parsed, None)
    if first is None:
        return EMPTY
    columns = list(first[1])

    def rows(selected):
        known = set(selected)
        width = len(known)

        def row(number, obj):
            extra = {k: v for k, v in obj.items() if k not in known} if len(obj) > width or \
                not known.issuperset(obj) else None
            return number, tuple(obj.get(name) for name in selected), extra or None

        yield row(*first)
        for number, obj in parsed:
            yield row(number, obj)

    return Table(columns, rows, open_columns=True)


def _object(line, number: int, bad: Bad) -> dict | None:
    if len(line) > rec.MAX_LINE_BYTES:
        bad(BadInput(f"a line of {len(line)} characters is over the {rec.MAX_LINE_BYTES >> 20} MiB a row may take",
                     line=number))
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        bad(BadInput(f"not valid JSON ({error.args[0]})", line=number))
        return None
    if type(obj) is not dict:
        bad(BadInput("expected a JSON object", line=number))
        return None
    return obj
