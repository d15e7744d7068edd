"""txt: one URL a line. Blank lines are not rows (as with img2dataset).

Read in 1 MiB pieces rather than line by line: a stretch of blank lines costs one C call
(a gzip of 2 GiB of newlines took over 300 s a line at a time), and a line too long for a
URL is caught before it is held whole.
"""

from .. import record as rec
from ..errors import BadInput
from .table import Bad, Table, TextDecoding

PIECE = 1 << 20


def table(stream, text: TextDecoding, bad: Bad) -> Table:
    errors = text.errors  # bytes that were not text before this file

    def rows(selected):
        number = 0  # lines before the current piece
        pending = ""  # the start of a line that continues in the next piece
        more = True
        while more:
            piece = stream.read(PIECE)
            if not piece:
                break
            # A text stream's read(n) returns fewer than n characters only at the end: reading on
            # would wait for a second Ctrl-D on a terminal.
            more = len(piece) == PIECE
            chunk = pending + piece if pending else piece
            end = chunk.rfind("\n") + 1
            pending = chunk[end:]
            if len(pending) > rec.MAX_LINE_BYTES // 2:
                raise BadInput(f"a line of over {len(pending)} characters is too long for a URL", line=number + 1)
            if not end:
                continue
            whole = chunk[:end]
            if whole.isspace():
                number += whole.count("\n")
                continue
            marked = text.errors != errors  # (this piece, or one before it, had bytes that were not text)
            for line in whole.split("\n")[:-1]:
                number += 1
                url = line.strip()
                if url and (not marked or text.check(url, number, bad)) and _fits(url, number, bad):
                    yield number, (url,), None
        url = pending.strip()
        if url and (text.errors == errors or text.check(url, number + 1, bad)) and _fits(url, number + 1, bad):
            yield number + 1, (url,), None

    return Table(["url"], rows)


def _fits(url: str, number: int, bad: Bad) -> bool:
    if len(url) > rec.MAX_LINE_BYTES // 2:
        bad(BadInput(f"a line of {len(url)} characters is too long for a URL", line=number))
        return False
    return True
