"""txt: one URL a line. Blank lines are not rows (as with img2dataset)."""

from collections.abc import Iterator

COLUMNS = ["url"]


def table(stream) -> tuple[list[str], Iterator[tuple[int, tuple]]]:
    """(columns, rows), each row with its 1-based line number."""

    def rows():
        for number, line in enumerate(stream, 1):
            url = line.strip()
            if url:
                yield number, (url,)

    return COLUMNS, rows()
