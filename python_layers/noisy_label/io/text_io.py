"""Reading the text inputs (label kv files, key lists, image lists, text matrices): the one
line reader, whose errors name the file and the line."""
import os
from typing import Iterator, Tuple


def numbered_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 text file; OSError / ValueError naming the file
    (and the line) when it is missing, a directory, or not text."""
    if os.path.isdir(path):
        raise IOError("%s is a directory, not a text file" % path)
    number = 0   # a missing file: open()'s FileNotFoundError, which names it
    with open(path, encoding="utf-8") as f:
        try:
            for number, line in enumerate(f, 1):
                yield number, line
        except UnicodeDecodeError as e:
            raise ValueError("%s:%d: not UTF-8 text (%s)" % (path, number + 1, e.reason))
