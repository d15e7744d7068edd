"""a2d-read's library: lists of URLs in any supported format, out as records.

Each format is a small module with `table(stream) -> (columns, rows)`; this
module expands paths, picks the format, maps columns onto record fields and
places errors at their input position.
"""

import glob as globlib
from collections.abc import Iterable, Iterator

import braceexpand
import fsspec

from .. import record as rec
from ..errors import BadInput, UsageProblem
from ..streams import STDIO, display_name, open_input
from . import csv as csv_format
from . import txt as txt_format

# format name -> function(text stream) -> (columns, rows)
FORMATS = {
    "txt": txt_format.table,
    "csv": csv_format.table,
    "tsv": csv_format.tsv_table,
}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def infer_format(path: str) -> str:
    """The input format from a file name, ignoring a compression suffix; stdin is txt."""
    if path == STDIO:
        return "txt"
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    extension = name.rsplit(".", 1)[-1] if "." in name else ""
    if extension not in FORMATS:
        raise UsageProblem(
            f"{path}: cannot tell the input format from the name; use --input-format "
            f"({'|'.join(FORMATS)})"
        )
    return extension


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Brace patterns, globs and folders (their files, sorted) to a list of inputs."""
    expanded = []
    for pattern in paths or [STDIO]:
        for path in braceexpand.braceexpand(pattern):
            if path == STDIO:
                expanded.append(path)
                continue
            fs, root = fsspec.core.url_to_fs(path)
            if globlib.has_magic(root):
                matches = sorted(fs.glob(root))
                if not matches:
                    raise UsageProblem(f"{path}: no file matches")
                expanded.extend(fs.unstrip_protocol(match) if "://" in path else match for match in matches)
            elif fs.isdir(root):
                found = sorted(info for info in fs.find(root) if not _hidden(info))
                expanded.extend(fs.unstrip_protocol(f) if "://" in path else f for f in found)
            elif fs.exists(root):
                expanded.append(path)
            else:
                raise UsageProblem(f"{path}: no such file")
    return expanded


def _hidden(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith((".", "_"))


class ColumnMap:
    """How one input's columns become record fields."""

    def __init__(self, columns: list[str], source: str, *, url_col: str, caption_col: str | None,
                 additional_columns: list[str] | None, single_url_column: bool):
        available = ", ".join(columns) or "none"

        def require(name: str, option: str) -> int:
            if name not in columns:
                raise UsageProblem(f"{source}: no column {name!r} for {option} (columns: {available})")
            return columns.index(name)

        self.url_index = 0 if single_url_column else require(url_col, "--url-col")
        if caption_col is not None:
            self.caption_index = require(caption_col, "--caption-col")
        elif "caption" in columns:
            self.caption_index = columns.index("caption")
        else:
            self.caption_index = None
        used = {self.url_index, self.caption_index}
        if additional_columns is None:
            extra = [i for i in range(len(columns)) if i not in used]
        else:
            extra = [require(name, "--save-additional-columns") for name in additional_columns]
        for index in extra:
            if columns[index] in rec.RESERVED:
                raise UsageProblem(
                    f"{source}: column {columns[index]!r} is a reserved record field; rename it "
                    f"or leave it out with --save-additional-columns"
                )
        self.extra = [(columns[i], i) for i in extra]

    def record(self, row: tuple) -> dict:
        record = {"url": row[self.url_index]}
        if self.caption_index is not None:
            record["caption"] = row[self.caption_index]
        for name, index in self.extra:
            record[name] = row[index]
        return record


def read(paths: Iterable[str] = (STDIO,), *, input_format: str | None = None, url_col: str = "url",
         caption_col: str | None = None, save_additional_columns: list[str] | None = None) -> Iterator[dict]:
    """Records from URL lists. Every record of one input carries the same fields."""
    for path in expand_paths(list(paths)):
        fmt = input_format or infer_format(path)
        if fmt not in FORMATS:
            raise UsageProblem(f"unknown input format {fmt!r} (one of {', '.join(FORMATS)})")
        source = display_name(path)
        try:
            with open_input(path, "rt", encoding="utf-8", newline="") as stream:
                columns, rows = FORMATS[fmt](stream)
                if not columns:  # an empty file has no rows to account for
                    continue
                mapping = ColumnMap(columns, source, url_col=url_col, caption_col=caption_col,
                                    additional_columns=save_additional_columns,
                                    single_url_column=fmt == "txt")
                for _line, row in rows:
                    yield mapping.record(row)
        except BadInput as error:
            raise error.located(source, None) from None
        except UnicodeDecodeError as error:
            raise BadInput(f"not UTF-8 text ({error.reason} at byte {error.start} of a block)", source) from None
