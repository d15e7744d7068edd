"""The shape every list format gives a2d-read: its columns, and rows of the columns asked for;
and what the text formats share: decoding with a row to blame for a byte that is not text."""

import codecs
import io
import itertools
import lzma
import re
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import BadInput, UsageProblem

# A row: (line or row number, values in the order of the selected columns,
#         fields beyond the table's columns or None (only jsonl has them)).
Row = tuple[int | None, tuple, dict | None]
# A list format is a function (stream, TextDecoding, Bad) -> Table. What it does with a bad row:
# `bad(error)` raises it (--on-error fail) or counts it and returns, and the format goes on with
# its next row (--on-error skip).
Bad = Callable[[BadInput], None]
_numbers = itertools.count()
_surrogateescape = codecs.lookup_error("surrogateescape")


@dataclass
class Table:
    columns: list[str]  # every column the input has (jsonl: those of its first row)
    rows: Callable[[list[str]], Iterator[Row]]  # rows with only the selected columns
    open_columns: bool = False  # later rows may have columns the first lacks (jsonl)


EMPTY = Table([], lambda selected: iter(()))


class TextDecoding:
    """Text lists are decoded by chunks, ahead of the rows: a byte that is not text in the
    encoding becomes a lone surrogate (as with surrogateescape) and is counted, so that the
    row holding it can be named (or skipped) when it is reached. Rows are only looked at once
    a file has had such a byte: valid text costs nothing."""

    _SURROGATE = re.compile("[\udc80-\udcff]")

    def __init__(self, encoding: str = "utf-8"):
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise UsageProblem(f"unknown --encoding {encoding!r}") from None
        # utf-8-sig: a byte-order mark (what spreadsheets write) is not part of the first field.
        self.codec = "utf-8-sig" if name == "utf-8" else name
        self.label = encoding
        self.errors = 0  # bytes that were not text, in every file so far
        # (an error handler is found by name: one name per reading, counting into it)
        self.handler = f"a2d-read-{next(_numbers)}"
        codecs.register_error(self.handler, self._mark)

    def _mark(self, error: UnicodeDecodeError):
        self.errors += 1
        return _surrogateescape(error)

    def wrap(self, binary) -> io.TextIOWrapper:
        return io.TextIOWrapper(binary, encoding=self.codec, errors=self.handler, newline="")

    def decode(self, data: bytes) -> str:
        return data.decode(self.codec, self.handler)

    @classmethod
    def first_undecodable(cls, text: str) -> int:
        """Where the first byte that was not text is in decoded `text` (-1: none)."""
        found = cls._SURROGATE.search(text)
        return -1 if found is None else found.start()

    def check(self, text: str, line: int | None, bad: Bad) -> bool:
        """True if `text` is whole; else report it to `bad` (which may raise) and return False."""
        found = self._SURROGATE.search(text)
        if found is None:
            return True
        byte = ord(found.group()) - 0xDC00
        hint = " (if the file is in another encoding, say which with --encoding, e.g. --encoding latin-1)" \
            if self.codec == "utf-8-sig" else ""
        bad(BadInput(f"not valid {self.label} text (byte 0x{byte:02x}){hint}", line=line))
        return False


def unreadable(error: Exception) -> bool:
    """A file that is not what its name says, or cut short: compressed streams, parquet, Arrow."""
    if isinstance(error, (EOFError, zlib.error, lzma.LZMAError, tarfile.TarError)):
        return True
    if isinstance(error, OSError):
        return error.errno is None  # bz2, gzip, pyarrow: bad data, not a failing disk or a missing right
    kinds = []
    if "pyarrow" in sys.modules:
        kinds.append(sys.modules["pyarrow"].ArrowException)
    if "zstandard" in sys.modules:
        kinds.append(sys.modules["zstandard"].ZstdError)
    return bool(kinds) and isinstance(error, tuple(kinds))
