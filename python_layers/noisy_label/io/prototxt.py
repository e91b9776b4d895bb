"""Prototxt files: a protobuf text file read into a message, with the file named in errors."""
from google.protobuf import text_format


def read_prototxt(path: str, message):
    """Merge a prototxt file into `message`; ValueError naming the file (and line) if it fails."""
    try:
        with open(path) as f:
            text_format.Merge(f.read(), message)
    except IOError as e:
        raise ValueError("%s: %s" % (path, e.strerror))
    except text_format.ParseError as e:
        raise ValueError("%s:%s" % (path, e))
    return message
