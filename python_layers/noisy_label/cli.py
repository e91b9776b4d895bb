"""Entry point of the tools/ CLIs: a one-line reason on stderr instead of a traceback.

    if __name__ == "__main__":
        cli.run(main, "make_lmdb")

Ctrl-C exits 130 and a plain `kill` (SIGTERM) 143, after the writers have removed their
temporary outputs; a bad input (IOError/OSError, ValueError, lmdb.Error) or a Failure exits 1;
an Interrupted (a step that stopped and said what it kept) 130.
"""
import argparse
import os
import signal
import sys

import lmdb

# What an interrupted tool leaves: whole files only, and a set it did not finish (make lmdb's
# LMDBs) is not recorded as a build, so make train refuses it until the tool runs again.
STOPPED_CLEANLY = "no file is left half-written; an unfinished set is refused until this runs again"


class Failure(Exception):
    """A failed step (a training stage, say) that a tool reports in one line: exit 1."""


class Interrupted(Failure):
    """A step stopped by Ctrl-C or SIGTERM after saving what it could; its text says what was
    kept and how to go on: exit 130."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that `finally` and `with` blocks clean up."""


def terminate_as_interrupt(signum, frame):
    """A SIGTERM handler: raise Terminated (a KeyboardInterrupt), so cleanups run."""
    raise Terminated()


def message(error) -> str:
    """One line for an exception: `file: reason` for an OSError, else its text."""
    if isinstance(error, EnvironmentError) and error.strerror:
        names = [str(n) for n in (error.filename, getattr(error, "filename2", None)) if n]
        return "%s: %s" % (" -> ".join(names), error.strerror) if names else error.strerror
    return str(error) or type(error).__name__


def run(main, prog: str) -> None:
    """Call main(); exit with `prog: reason` and no traceback on Ctrl-C, SIGTERM or bad input."""
    signal.signal(signal.SIGTERM, terminate_as_interrupt)
    try:
        main()
    except Terminated:
        _exit(prog, "terminated (SIGTERM); " + STOPPED_CLEANLY, 143)
    except KeyboardInterrupt:
        _exit(prog, "interrupted; " + STOPPED_CLEANLY, 130)
    except Interrupted as e:
        _exit(prog, message(e), 130)
    except BrokenPipeError:
        # `tool | head`: the reader of stdout is gone; nothing more to say there.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (Failure, EnvironmentError, ValueError, lmdb.Error) as e:
        _exit(prog, message(e), 1)


def _exit(prog: str, text: str, status):
    sys.stderr.write("%s: %s\n" % (prog, text))
    sys.exit(status)


def at_least(low, kind=int):
    """An argparse type: a `kind` (int, float) refused below `low`."""
    def parse(text: str):
        value = kind(text)
        if not value >= low:  # also refuses NaN
            raise argparse.ArgumentTypeError("must be at least %s, got %s" % (low, text))
        return value
    parse.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"
    return parse
