"""txt: one URL a line. Blank lines are not rows (as with img2dataset).

Read in 1 MiB pieces rather than line by line: a stretch of blank lines costs one C call
(a gzip of 2 GiB of newlines took over 300 s a line at a time), and a line too long for a
URL is caught before it is held whole.
"""

from .. import record as rec
from ..errors import BadInput
from .table import Table

PIECE = 1 << 20


def table(stream) -> Table:
    def rows(selected):
        number = 0  # lines before the current piece
        pending = ""  # the start of a line that continues in the next piece
        while True:
            piece = stream.read(PIECE)
            if not piece:
                break
            text = pending + piece if pending else piece
            end = text.rfind("\n") + 1
            pending = text[end:]
            if len(pending) > rec.MAX_LINE_BYTES // 2:
                raise BadInput(f"a line of over {len(pending)} characters is too long for a URL", line=number + 1)
            if not end:
                continue
            whole = text[:end]
            if whole.isspace():
                number += whole.count("\n")
                continue
            for line in whole.split("\n")[:-1]:
                number += 1
                url = line.strip()
                if url:
                    yield number, _checked(url, number), None
        url = pending.strip()
        if url:
            yield number + 1, _checked(url, number + 1), None

    return Table(["url"], rows)


def _checked(url: str, number: int) -> tuple[str]:
    if len(url) > rec.MAX_LINE_BYTES // 2:
        raise BadInput(f"a line of {len(url)} characters is too long for a URL", line=number)
    return (url,)
