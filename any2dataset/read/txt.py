"""txt: one URL a line. Blank lines are not rows (as with img2dataset)."""

from .. import record as rec
from ..errors import BadInput
from .table import Table


def table(stream) -> Table:
    def rows(selected):
        for number, line in enumerate(stream, 1):
            url = line.strip()
            if url:
                if len(url) > rec.MAX_LINE_BYTES // 2:
                    raise BadInput(f"a line of {len(url)} characters is too long for a URL", line=number)
                yield number, (url,), None

    return Table(["url"], rows)
