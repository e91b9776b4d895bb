"""What an output was built from, recorded beside it: the project's one "up to date" rule.

A signature is a JSON-able dict (options, seeds, the files it read); an output is up to date
when the signature recorded for it equals the one it would be built from now. `make lmdb`
keeps one per output group in `db/<dataset>/manifest.json`; each training stage keeps one in
`snapshots/<dataset>/<stage>.manifest.json`.
"""
import hashlib
import json
import os
from typing import List, Optional

from noisy_label.io.blob_io import atomic_write_bytes


def file_signature(path: str) -> list:
    """[absolute path, size, mtime]: cheap, for large raw inputs read once."""
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, int(stat.st_mtime)]


def sha256(path: str, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


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
