"""txt: one URL a line. Blank lines are not rows (as with img2dataset)."""

from .table import Table


def table(stream) -> Table:
    def rows(selected):
        for number, line in enumerate(stream, 1):
            url = line.strip()
            if url:
                yield number, (url,), None

    return Table(["url"], rows)
