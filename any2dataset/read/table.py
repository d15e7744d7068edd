"""The shape every list format gives a2d-read: its columns, and rows of the columns asked for."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

# A row: (line number or None, values in the order of the selected columns,
#         fields beyond the table's columns or None (only jsonl has them)).
Row = tuple[int | None, tuple, dict | None]


@dataclass
class Table:
    columns: list[str]  # every column the input has
    rows: Callable[[list[str]], Iterator[Row]]  # rows with only the selected columns


EMPTY = Table([], lambda selected: iter(()))
