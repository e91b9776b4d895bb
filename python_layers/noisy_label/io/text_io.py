"""Reading the text inputs (label kv files, key lists, image lists, text matrices): the one
line reader, whose errors name the file and the line, and the one parser of labels and keys."""
import os
import re
from typing import Iterator, Optional, Tuple

_BOM = b"\xef\xbb\xbf"
_LABEL = re.compile(r"-?[0-9]+\Z")   # ASCII digits only: int() also takes "1_3" and "٣"


def numbered_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 text file; OSError / ValueError naming the file
    (and the line) when it is missing, a directory, not text, or starts with a byte-order mark."""
    if os.path.isdir(path):
        raise IOError("%s is a directory, not a text file" % path)
    # Bytes, decoded line by line: a text-mode reader decodes ahead in blocks, so its error
    # would name the wrong line.
    with open(path, "rb") as f:  # a missing file: open()'s FileNotFoundError, which names it
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(_BOM):
                raise ValueError("%s:1: starts with a UTF-8 byte-order mark (BOM); save the file "
                                 "as UTF-8 without one" % path)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError("%s:%d: not UTF-8 text (%s at byte %d of the line)"
                                 % (path, number, e.reason, e.start))


def parse_label(text: str, where: str, key: Optional[str] = None) -> int:
    """The integer label written as `text` (ASCII digits, optional minus); ValueError naming
    `where` ("file:line") and the `key` it labels otherwise."""
    if not _LABEL.match(text):
        raise ValueError("%s: label %r%s is not an integer (ASCII digits only)"
                         % (where, text, " of %s" % key if key is not None else ""))
    return int(text)


def check_key(key: str, where: str) -> str:
    """`key`, a relative path inside the data root; ValueError naming `where` when it is
    absolute or climbs out with `..` (it would read files outside DATA_ROOT)."""
    if os.path.isabs(key) or key.startswith("~") or ".." in re.split(r"[\\/]", key):
        raise ValueError("%s: key %r must be a path relative to the data root, without `..`"
                         % (where, key))
    return key
