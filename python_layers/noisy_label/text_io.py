"""Reading the text inputs (label kv files, key lists): errors that name the file and line."""
import os


def numbered_lines(path):
    """Yield (line number, line) of a UTF-8 text file; IOError / ValueError naming the file
    (and the line) when it is missing, a directory, or not text."""
    if os.path.isdir(path):
        raise IOError("%s is a directory, not a text file" % path)
    if not os.path.isfile(path):
        raise IOError("missing file %s" % path)
    number = 0
    with open(path, encoding="utf-8") as f:
        try:
            for number, line in enumerate(f, 1):
                yield number, line
        except UnicodeDecodeError as e:
            raise ValueError("%s:%d: not UTF-8 text (%s)" % (path, number + 1, e.reason))
