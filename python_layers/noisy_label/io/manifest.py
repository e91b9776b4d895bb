"""What an output was built from, recorded beside it: the project's one "up to date" rule.

A signature is a JSON-able dict (options, seeds, the files it read); an output is up to date
when the signature recorded for it equals the one it would be built from now. `make lmdb`
keeps one per output group in `db/<dataset>/manifest.json`; each training stage keeps one in
`snapshots/<dataset>/<stage>.manifest.json`.
"""
import hashlib
import json
import os
from typing import Iterable, List, Optional

from noisy_label.io.blob_io import atomic_write_bytes


def files_signature(root: str, names: Iterable[str]) -> str:
    """SHA-256 of the (name, size, mtime in ns) of each file `root/name`, in order: cheap for a
    million images, yet it changes when one of them is replaced (a `cp -p` of another size, or
    any write, moves its mtime). A missing file counts as "missing"."""
    result = hashlib.sha256()
    for name in names:
        try:
            stat = os.stat(os.path.join(root, name))
            result.update(("%s\0%d\0%d\n" % (name, stat.st_size, stat.st_mtime_ns)).encode())
        except FileNotFoundError:
            result.update(("%s\0missing\n" % name).encode())
    return result.hexdigest()


def fingerprint(path: str, samples: int = 17) -> str:
    """What an output holds, whatever its mtime or place: a file's SHA-256; for an LMDB (a
    directory), SHA-256 of its record count and of `samples` records spread over its keys
    (found by the `%08d` key prefix every LMDB here uses), so that one swapped in from
    another build or seed is told apart without reading every record."""
    if not os.path.isdir(path):
        return sha256(path)
    import lmdb
    result = hashlib.sha256()
    env = lmdb.open(path, readonly=True, lock=False, subdir=True)
    try:
        entries = env.stat()["entries"]
        result.update(b"%d\n" % entries)
        with env.begin() as txn:
            cursor = txn.cursor()
            for index in sorted(set(int(i) for i in _spread(entries, samples))):
                if cursor.set_range(b"%08d" % index):
                    result.update(cursor.key() + b"\0" + cursor.value() + b"\n")
            if cursor.last():
                result.update(cursor.key() + b"\0" + cursor.value())
    finally:
        env.close()
    return result.hexdigest()


def _spread(count: int, samples: int):
    """`samples` indices spread evenly over 0..count-1 (fewer when count is smaller)."""
    if count <= 0:
        return []
    step = max(1, (count - 1) / float(max(samples - 1, 1)))
    return [min(count - 1, round(i * step)) for i in range(samples)]


def digest(path: str, algorithm: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest (hashlib's `algorithm`) of a file's bytes."""
    result = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            result.update(block)
    return result.hexdigest()


def sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    return digest(path, "sha256")


def content_signature(path: Optional[str]) -> Optional[dict]:
    """{"path", "sha256"} of a file, or None when `path` is None."""
    if path is None:
        return None
    return {"path": os.path.abspath(path), "sha256": sha256(path)}


def load(path: str) -> dict:
    """The JSON object recorded at `path`, {} when there is none; ValueError if unreadable."""
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            record = json.load(f)
    except ValueError as e:
        raise ValueError("%s: not a JSON manifest (%s); delete it to rebuild" % (path, e))
    if not isinstance(record, dict):
        raise ValueError("%s: not a JSON object; delete it to rebuild" % path)
    return record


def save(path: str, record: dict) -> None:
    """Write `record` as JSON at `path`, atomically."""
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


def changes(old: object, new: object, prefix: str = "") -> List[str]:
    """The dotted keys whose values differ between two signatures, e.g. ["lmdb.mixed.seed"]."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) == {"path", "sha256"} == set(new) and old != new:
            return [prefix.rstrip(".") or "(all)"]   # a file's content: name the file's key
        out = []
        for key in sorted(set(old) | set(new)):
            out += changes(old.get(key), new.get(key), "%s%s." % (prefix, key))
        return out
    return [] if old == new else [prefix.rstrip(".") or "(all)"]
