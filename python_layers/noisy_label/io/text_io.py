"""Reading the text inputs (label kv files, key lists, image lists, text matrices): the one
line reader, whose errors name the file and the line, and the one parser of labels and keys."""
import os
import re
from typing import Iterator, Optional, Tuple

_BOM = b"\xef\xbb\xbf"
_PARTS = re.compile(r"[\\/]")
_LABELS = {}   # label text -> int, of the texts parse_label has accepted


def numbered_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 text file; OSError / ValueError naming the file
    (and the line) when it is missing, a directory, not text, or starts with a byte-order mark."""
    if os.path.isdir(path):
        raise IOError("%s is a directory, not a text file" % path)
    with open(path, "rb") as f:   # a missing file: open()'s FileNotFoundError, which names it
        if f.read(len(_BOM)) == _BOM:
            raise ValueError("%s:1: starts with a UTF-8 byte-order mark (BOM); save the file "
                             "as UTF-8 without one" % path)
    with open(path, encoding="utf-8", newline="") as f:
        try:
            for number, line in enumerate(f, 1):
                yield number, line
        except UnicodeDecodeError:
            # A text reader decodes ahead in blocks, so its error does not tell the line:
            # find it in the bytes.
            raise _not_utf8(path) from None


def _not_utf8(path: str) -> ValueError:
    """The error naming the first line of `path` that is not UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return ValueError("%s:%d: not UTF-8 text (%s at byte %d of the line)"
                                  % (path, number, e.reason, e.start))
    return ValueError("%s: not UTF-8 text" % path)


def parse_label(text: str, path: str, number: int, key: Optional[str] = None) -> int:
    """The integer label written as `text` on line `number` of `path` (ASCII digits, optional
    minus: int() also takes "1_3" and "٣"); ValueError naming the file, line and `key`."""
    value = _LABELS.get(text)
    if value is not None:   # a label file holds a few distinct labels a million times
        return value
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("%s:%d: label %r%s is not an integer (ASCII digits only)"
                         % (path, number, text, " of %s" % key if key is not None else ""))
    value = int(text)
    if len(_LABELS) < 4096:
        _LABELS[text] = value
    return value


def check_key(key: str, path: str, number: int) -> str:
    """`key` (line `number` of `path`), a relative path inside the data root; ValueError naming
    the file and line when it is absolute or climbs out with `..` (it would read files outside
    DATA_ROOT)."""
    if key[:1] in ("/", "\\", "~") or (".." in key and ".." in _PARTS.split(key)):
        raise ValueError("%s:%d: key %r must be a path relative to the data root, without `..`"
                         % (path, number, key))
    return key
