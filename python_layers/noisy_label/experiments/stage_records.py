"""What each stage was trained from, beside its snapshots: the "done or trained again" rule.

A stage's record (`snapshots/<dataset>/<stage>.manifest.json`) is {"signature", "complete"}.
A stage is done when its record's signature is the one it would be trained from now, the
record says complete, and its output is there and readable. Otherwise it is trained again:
the record's old files (snapshots, log) are set aside, not deleted, until the new run has a
snapshot of its own, and put back if it fails before that.

    record = StageRecord("digits", "clean", record_path, aside_dir, log_path)
    if not record.up_to_date(signature, final, stale=old_snapshots):
        try:
            train()          # calls record.drop_set_aside() at its first snapshot
        except BaseException:
            record.restore()
            raise
        record.completed()
"""
import os
import shutil
from typing import List, Optional

from noisy_label.experiments.caffe_run import StageError
from noisy_label.io import manifest, snapshots

ASIDE_RECORD = "set_aside.json"   # in a stage's aside_dir: its old record and where files were


class StageRecord(object):
    """The record of stage `stage` at `record_path`, its set-aside files under `aside_dir`,
    its log at `log_path`; `name` is the dataset, for messages."""

    def __init__(self, name: str, stage: str, record_path: str, aside_dir: str, log_path: str):
        self.name, self.stage, self.record_path = name, stage, record_path
        self.aside_dir, self.log_path = aside_dir, log_path
        self.set_aside = None      # (old record, [(path, set-aside path)]) while held

    def load(self) -> dict:
        try:
            return manifest.load(self.record_path)
        except ValueError as e:
            raise StageError(str(e))

    def up_to_date(self, signature: dict, done: str, stale=()) -> bool:
        """True if the record says the stage finished from `signature` and `done` is there
        and readable; else records `signature` as begun, after setting aside the `stale`
        files of an older one (and its log) until the new run has a snapshot."""
        record = self.load()
        if self.set_aside is None and os.path.isdir(self.aside_dir):
            record = self._left_aside(record, signature)
        if record.get("signature") == signature:
            if record.get("complete") and os.path.exists(done):
                problem = unreadable(done)
                if not problem:
                    print("[%s] %s: done (%s)" % (self.name, self.stage, os.path.relpath(done)))
                    return True
                print("[%s] %s: not done after all: %s" % (self.name, self.stage, problem))
                os.remove(done)
                record["complete"] = False
                manifest.save(self.record_path, record)
            return False
        stale = sorted(set(f for f in stale if os.path.exists(f)))
        if record or stale:
            changed = describe_changes(manifest.changes(record.get("signature"), signature)) \
                if record else ["no record of what its snapshots were trained from"]
            print("[%s] %s: starting again, its inputs changed: %s"
                  % (self.name, self.stage, ", ".join(changed)))
            self._set_aside(record, stale)
        manifest.save(self.record_path, {"signature": signature, "complete": False})
        return False

    def completed(self) -> None:
        record = manifest.load(self.record_path)
        record["complete"] = True
        manifest.save(self.record_path, record)

    def _set_aside(self, record: dict, stale) -> None:
        """Move the stage's finished files (and its log) into aside_dir, with a list of where
        they came from and their record (for a run killed before it could put them back)."""
        self.drop_set_aside()
        os.makedirs(self.aside_dir, exist_ok=True)
        moved = []
        for path in list(stale) + ([self.log_path] if os.path.exists(self.log_path) else []):
            target = os.path.join(self.aside_dir, "%d_%s" % (len(moved), os.path.basename(path)))
            os.replace(path, target)
            moved.append((path, target))
        if moved:
            self.set_aside = (record, moved)
            manifest.save(os.path.join(self.aside_dir, ASIDE_RECORD),
                          {"record": record, "moved": moved})
        else:
            os.rmdir(self.aside_dir)

    def _left_aside(self, record: dict, signature: dict) -> dict:
        """What a re-run killed before its first snapshot left set aside: put back when it was
        trained from `signature` (the record then is its), dropped otherwise (it is stale)."""
        try:
            left = manifest.load(os.path.join(self.aside_dir, ASIDE_RECORD))
        except ValueError:
            left = {}
        if left.get("record", {}).get("signature") == signature:
            self.set_aside = (left["record"], [tuple(m) for m in left["moved"]])
            print("[%s] %s: putting back what a killed re-run had set aside" % (self.name, self.stage))
            self.restore()
            return self.load()
        self.drop_set_aside()
        return record

    def drop_set_aside(self) -> None:
        """The new run has a snapshot: what it replaces can go."""
        self.set_aside = None
        shutil.rmtree(self.aside_dir, ignore_errors=True)

    def restore(self) -> bool:
        """Put the set-aside files and the old record back (a re-run that failed before its
        first snapshot); True if there was something to restore."""
        if self.set_aside is None:
            return False
        record, moved = self.set_aside
        self.set_aside = None
        for path, target in moved:
            if os.path.exists(target):
                os.replace(target, path)
        shutil.rmtree(self.aside_dir, ignore_errors=True)
        if record:
            manifest.save(self.record_path, record)
        elif os.path.exists(self.record_path):
            os.remove(self.record_path)
        return True


def unreadable(path: str) -> Optional[str]:
    """Why a finished stage's output cannot be used (a .caffemodel cut short), or None."""
    if path.endswith(".caffemodel"):
        try:
            snapshots.check_caffemodel(path)
        except ValueError as e:
            return str(e)
    return None


def describe_changes(changed: List[str]) -> List[str]:
    """Signature keys for people: the LMDBs' options that changed ("LMDBs (noise_level)"),
    else the groups make lmdb rebuilt ("LMDBs (clean_train rebuilt)"); other keys as they are."""
    out, options, rebuilt = [], [], []
    for key in changed:
        parts = key.split(".")
        if parts[0] != "lmdb":
            out.append(key)
            continue
        if "LMDBs" not in out:
            out.append("LMDBs")
        if len(parts) > 3 and parts[2] == "signature":
            options.append(parts[3])
        elif len(parts) > 1:
            rebuilt.append(parts[1])
    if "LMDBs" in out:
        what = (_unique(options) if options else
                ["%s rebuilt" % ", ".join(_unique(rebuilt))] if rebuilt else ["manifest"])
        out[out.index("LMDBs")] = "LMDBs (%s)" % ", ".join(what)
    return out


def _unique(items):
    return sorted(set(items), key=items.index)
