"""A solver's snapshots on disk: `<snapshot_prefix>_iter_<N>.caffemodel` + `.solverstate`.

Caffe writes a snapshot in place, the `.caffemodel` first and the `.solverstate` after it,
so a run killed while snapshotting leaves a truncated file under a final name. A
`.solverstate` that parses whole (its last field, `current_step`, present; `iter` as named)
and names a `.caffemodel` that exists marks a complete snapshot: that is the one to resume.
"""
import glob
import os
import re
from typing import List, Optional, Tuple

_ITER = re.compile(r"_iter_(\d+)\.solverstate$")


def path(prefix: str, iteration: int, ext: str = ".caffemodel") -> str:
    """The file Caffe writes for `prefix` at `iteration`."""
    return "%s_iter_%d%s" % (prefix, iteration, ext)


def listed(prefix: str) -> List[Tuple[int, str]]:
    """[(iteration, solverstate path)] of `prefix`, newest first."""
    found = []
    for state in glob.glob(glob.escape(prefix) + "_iter_*.solverstate"):
        m = _ITER.search(state)
        if m and state == path(prefix, int(m.group(1)), ".solverstate"):
            found.append((int(m.group(1)), state))
    return sorted(found, reverse=True)


def check_solverstate(state: str, base_dir: Optional[str] = None) -> int:
    """The iteration of a complete `.solverstate`; ValueError naming the file when it is not.

    base_dir: where a relative `learned_net` is found (Caffe's working directory).
    """
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    message = caffe_pb2.SolverState()
    try:
        with open(state, "rb") as f:
            message.ParseFromString(f.read())
    except IOError as e:
        raise ValueError("%s: %s" % (state, e.strerror))
    except DecodeError:
        raise ValueError("%s is truncated or not a solver state (a snapshot cut short?)" % state)
    if not message.HasField("current_step"):
        raise ValueError("%s is truncated (a snapshot cut short?)" % state)
    m = _ITER.search(state)
    if m and int(m.group(1)) != message.iter:
        raise ValueError("%s holds iteration %d, not %s" % (state, message.iter, m.group(1)))
    if message.learned_net:
        model = message.learned_net
        if not os.path.isabs(model) and base_dir:
            model = os.path.join(base_dir, model)
        if not os.path.isfile(model):
            raise ValueError("%s names weights %s, which do not exist" % (state, model))
        check_caffemodel(model)
    return message.iter


def check_caffemodel(model: str) -> None:
    """ValueError naming `model` unless it is a whole serialized NetParameter: every top-level
    protobuf field (name, layers) read off its wire format ends inside the file and the last
    ends at its end, so a file cut short anywhere is caught without parsing hundreds of MB."""
    import mmap
    try:
        with open(model, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ValueError("%s is empty (a snapshot cut short?)" % model)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                layers = _count_layers(data, size)
    except OSError as e:
        raise ValueError("%s: %s" % (model, e.strerror))
    if layers is None:
        raise ValueError("%s is truncated or not a Caffe model (a snapshot cut short?)" % model)
    if not layers:
        raise ValueError("%s holds no layers: not a Caffe model" % model)


def _count_layers(data, size: int) -> Optional[int]:
    """The layer fields of a NetParameter's wire format, or None where it does not end whole."""
    position, layers = 0, 0
    while position < size:
        tag, position = _varint(data, position)
        if position is None or tag >> 3 == 0:
            return None
        wire_type = tag & 7
        if wire_type in (0, 2):
            value, position = _varint(data, position)
            if position is None:
                return None
            position += value if wire_type == 2 else 0
        elif wire_type in (1, 5):
            position += 8 if wire_type == 1 else 4
        else:
            return None
        if position > size:
            return None
        layers += (tag >> 3) in (2, 100)   # NetParameter.layers (V1) / layer
    return layers


def _varint(data: bytes, position: int):
    """(value, next position) of the protobuf varint at `position`; (0, None) if cut short."""
    value = shift = 0
    while position < len(data) and shift < 70:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    return 0, None


def latest(prefix: str, after: int = 0, until: Optional[int] = None,
           base_dir: Optional[str] = None, skipped=None) -> Optional[Tuple[int, str]]:
    """(iteration, solverstate) of the newest complete snapshot with after < iteration <=
    until (None: any), or None. Incomplete ones are skipped, their reasons appended to
    `skipped` (a list) when given."""
    for iteration, state in listed(prefix):
        if iteration <= after or (until is not None and iteration > until):
            continue
        try:
            check_solverstate(state, base_dir)
        except ValueError as e:
            if skipped is not None:
                skipped.append(str(e))
            continue
        return iteration, state
    return None


def remove(prefix: str, after: int = 0, until: Optional[int] = None) -> List[str]:
    """Delete the snapshots of `prefix` with after < iteration <= until; the paths removed."""
    removed = []
    for iteration, state in listed(prefix):
        if iteration > after and (until is None or iteration <= until):
            for ext in (".solverstate", ".caffemodel"):
                name = path(prefix, iteration, ext)
                if os.path.exists(name):
                    os.remove(name)
                    removed.append(name)
    return removed


def prune(prefix: str, keep: int, after: int = 0, before: Optional[int] = None) -> List[str]:
    """Keep the newest `keep` snapshots with after < iteration < before; delete older ones.
    Returns the paths removed."""
    inside = [i for i, _ in listed(prefix) if i > after and (before is None or i < before)]
    removed = []
    for iteration in inside[keep:]:
        removed += remove(prefix, iteration - 1, iteration)
    return removed
