"""The grammar of THRESHOLD, make relabel's flag threshold: auto | <p> | precision:<p>. Read
by make relabel (noisy_label.experiments.relabel) and checked in a dataset.yaml's
`threshold` (noisy_label.datasets.folder)."""


def _bad_threshold(text) -> ValueError:
    return ValueError("THRESHOLD must be auto, a number in [0, 1] or precision:<p> with p in "
                      "(0, 1], got %r" % (text,))


def check_threshold(threshold) -> float:
    """`threshold` as a float in [0, 1]; ValueError naming THRESHOLD otherwise (NaN included)."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise _bad_threshold(threshold)
    if not 0.0 <= value <= 1.0:
        raise _bad_threshold(threshold)
    return value


def parse_threshold(text) -> tuple:
    """("auto", None) | ("fixed", p) | ("precision", p) of THRESHOLD=auto|<p>|precision:<p>;
    ValueError in one line naming THRESHOLD otherwise."""
    text = str(text).strip()
    if text == "auto":
        return "auto", None
    if text.startswith("precision:"):
        try:
            value = check_threshold(text.split(":", 1)[1])
        except ValueError:
            raise _bad_threshold(text)
        if value == 0.0:
            raise _bad_threshold(text)
        return "precision", value
    return "fixed", check_threshold(text)
