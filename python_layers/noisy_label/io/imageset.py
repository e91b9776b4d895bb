"""Image LMDBs from a list of image files, as stock `convert_imageset` writes them, in parallel.

Records are `Datum`s keyed `%08d_<path>` in list order (after an optional shuffle), with
raw channel-major pixels (`channels/height/width/data/label`, `encoded: false`) or the
JPEG/PNG bytes (`data/label`, `encoded: true`). Images are read with OpenCV and resized with
`cv2.resize` (bilinear) exactly as `convert_imageset -resize_height/-resize_width` does.

Decoding and resizing run in worker processes over chunks of the list; the parent writes
the records in order, so the output does not depend on the number of workers. The
per-pixel sum of the written images comes back with each chunk, giving the mean file
without a second pass over the database.
"""
import multiprocessing
import os
import re
import signal
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from noisy_label.io import atomic, lmdb_io, text_io

CHUNK = 32  # images per worker task: large enough to amortise IPC, small enough to stream
# Images larger than this are refused before decoding (a small file can claim a huge size and
# take all memory): 8192 x 8192, far above Clothing1M's photos (about 500 x 500).
MAX_IMAGE_PIXELS = 8192 * 8192


class BadImageError(ValueError):
    """An image that is missing or cannot be decoded."""


def read_image_list(path: str, num_classes: Optional[int] = None) -> List[Tuple[str, int]]:
    """[(image path, label)] from a list file of `path label` lines (convert_imageset's format).

    The label is the last space-separated field, so paths may contain spaces. Raises
    ValueError naming the file and line of a malformed line or a label outside 0..N-1.
    """
    items = []
    for number, line in text_io.numbered_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        image, _, label = line.rpartition(" ")
        if not image or not label:
            raise ValueError("%s:%d: expected `path label`, got %r" % (path, number, line))
        label = text_io.parse_label(label, path, number, image)
        if num_classes is not None and not 0 <= label < num_classes:
            raise ValueError("%s:%d: label %d of %s is outside 0..%d"
                             % (path, number, label, image, num_classes - 1))
        items.append((image, label))
    if not items:
        raise ValueError("%s: the image list is empty" % path)
    return items


def read_label_list(path: str, num_classes: Optional[int] = None) -> np.ndarray:
    """Labels (M,) int64 from the last field of each line (`[name] label`); -1 = no label."""
    labels = []
    for number, line in text_io.numbered_lines(path):
        fields = line.split()
        if not fields:
            continue
        label = text_io.parse_label(fields[-1], path, number)
        if label < -1 or (num_classes is not None and label >= num_classes):
            raise ValueError("%s:%d: label %d is outside -1..%s" % (
                path, number, label, num_classes - 1 if num_classes else "N-1"))
        labels.append(label)
    if not labels:
        raise ValueError("%s: the label list is empty" % path)
    return np.array(labels, np.int64)


def write_image_list(path: str, items: Iterable[tuple]) -> None:
    """Write [(path, label, ...)] as space-separated lines, via a temporary name."""
    atomic.write_text(path, "".join(" ".join(str(field) for field in item) + "\n"
                                    for item in items))


def check_image_size(path: str, data: np.ndarray) -> None:
    """BadImageError naming `path` when the encoded image's header (read by Pillow, without
    decoding) claims more than MAX_IMAGE_PIXELS; formats Pillow does not know pass (OpenCV
    decides)."""
    import io

    from PIL import Image
    try:
        with Image.open(io.BytesIO(data.tobytes())) as header:
            width, height = header.size
    except Image.DecompressionBombError as e:   # over Pillow's own, larger limit
        claimed = re.search(r"\d+", str(e))
        raise BadImageError("image %s claims %s pixels, over the %d-pixel limit (a decompression "
                            "bomb?)" % (path, claimed.group(0) if claimed else "more",
                                        MAX_IMAGE_PIXELS))
    except Exception:   # not an image Pillow knows, or a broken header: OpenCV decides
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise BadImageError("image %s is %dx%d, over the %d-pixel limit (a decompression bomb?)"
                            % (path, width, height, MAX_IMAGE_PIXELS))


def load_image(path: str, resize: Optional[Tuple[int, int]] = None, gray: bool = False) -> np.ndarray:
    """The image at `path` as (H, W, C) uint8 in OpenCV's channel order (BGR), resized to
    (height, width) when `resize` is given; raises BadImageError naming the file."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (IOError, OSError) as e:
        raise BadImageError("cannot read image %s: %s" % (path, e.strerror or e))
    check_image_size(path, data)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) \
            if data.size else None
    except cv2.error as e:   # e.g. out of memory for a huge image
        raise BadImageError("cannot decode image %s: %s" % (path, e.err or e))
    if image is None:
        raise BadImageError("cannot decode image %s (corrupt or not an image)" % path)
    if resize:
        image = cv2.resize(image, (resize[1], resize[0]))  # cv::Size is (width, height)
    return image.reshape(image.shape[0], image.shape[1], -1)


def jpeg_roundtrip(images: np.ndarray, quality: int) -> np.ndarray:
    """Images (M, 3, H, W) uint8 BGR as the original CIFAR-10 pipeline left them: written as
    JPEG by scipy.misc.imsave (Pillow, `quality`), read back by convert_imageset (OpenCV)."""
    import io

    from PIL import Image
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image[::-1].transpose(1, 2, 0))).save(
            buf, format="JPEG", quality=int(quality))
        decoded = cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR)
        out[i] = decoded.transpose(2, 0, 1)
    return out


def image_datum(image: np.ndarray, label: int, encoding: Optional[str] = None):
    """Serialized Datum of an (H, W, C) uint8 image: raw channel-major pixels, or encoded."""
    if encoding:
        ok, buf = cv2.imencode("." + encoding, image)
        if not ok:
            raise ValueError("OpenCV cannot encode as %r" % encoding)
        return lmdb_io.encoded_datum(buf, label).SerializeToString()
    # cv2.split is a SIMD deinterleave; numpy's transpose copy is ten times slower here.
    return lmdb_io.image_datum(np.array(cv2.split(image)), label).SerializeToString()


def _load_chunk(task):
    """Worker: [(path, label)] -> ([serialized Datum or None], [(path, error)],
    pixel sum (H, W, C) or None)."""
    items, root, resize, gray, encoding = task
    records, bad, pixel_sum = [], [], None
    for path, label in items:
        full_path = os.path.join(root, path)
        try:
            image = load_image(full_path, resize, gray)
        except BadImageError as e:
            records.append(None)
            bad.append((path, str(e)))
            continue
        if encoding and not resize and path.lower().endswith("." + encoding.lower()):
            # convert_imageset stores such a file's own bytes rather than re-encoding it.
            records.append(lmdb_io.encoded_datum(np.fromfile(full_path, np.uint8), label)
                           .SerializeToString())
        else:
            records.append(image_datum(image, label, encoding))
        if pixel_sum is None:
            pixel_sum = np.zeros(image.shape, np.float64)
        if pixel_sum.shape == image.shape:
            cv2.accumulate(image, pixel_sum)
        else:
            pixel_sum = np.full(image.shape, np.nan)  # sizes differ: no mean
    return records, bad, pixel_sum


def _worker(func, conn, parent_ends):
    """A decoder process: answer each task read from `conn` with (ok, func(task) or the error)."""
    for end in parent_ends:
        end.close()  # inherited by the fork: the parent's death must reach us as EOF
    cv2.setNumThreads(1)  # one decoder per process; the processes are the parallelism
    # Ctrl-C reaches the whole process group: the parent alone stops, cleans up and ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # blocked across the fork
    try:
        while True:
            task = conn.recv()
            try:
                result = (True, func(task))
            except Exception as e:
                result = (False, e)
            conn.send(result)
    except (EOFError, OSError):
        pass  # the parent closed our pipe (done) or is gone


_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _Workers(object):
    """Processes that map func over tasks, results in task order, `depth` tasks in flight each.

    Unlike multiprocessing.Pool, each worker has its own pipe and no lock is shared between
    processes, so Ctrl-C or a kill at any moment cannot hang the parent: a worker that dies
    shows up as EOF, and stop() kills whatever is left.
    """

    def __init__(self, func, processes, depth=4):
        context = multiprocessing.get_context("fork")
        self.depth, self.conns, self.procs = depth, [], []
        # A child forked while OpenCV's thread pool is alive deadlocks in its first parallel
        # call: stop the pool (one thread) across the fork, then give the parent its threads back.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        # Until a child has its own handlers, a signal would run the parent's there.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for _ in range(processes):
                parent_end, child_end = context.Pipe()
                self.conns.append(parent_end)
                proc = context.Process(target=_worker, args=(func, child_end, self.conns),
                                       daemon=True)
                proc.start()
                child_end.close()
                self.procs.append(proc)
        except BaseException:
            self.stop()
            raise
        finally:
            cv2.setNumThreads(threads)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def imap(self, tasks):
        n, sent = len(self.conns), 0
        for index in range(len(tasks)):
            try:
                while sent < min(len(tasks), index + self.depth * n):
                    self.conns[sent % n].send(tasks[sent])
                    sent += 1
                ok, result = self.conns[index % n].recv()
            except (EOFError, BrokenPipeError, ConnectionResetError):
                for proc in self.procs:
                    proc.join(1)
                raise OSError("an image decoder process died (exit status %s)" % ", ".join(
                    str(proc.exitcode) for proc in self.procs if proc.exitcode is not None))
            if not ok:
                raise result
            yield result

    def stop(self):
        """End the workers, whatever they are doing: they hold nothing but their pipe."""
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.join()


def build_image_lmdb(out_path, items, root="", resize=None, gray=False, encoding=None,
                     shuffle=False, seed=0, skip_bad=False, processes=None, desc=None):
    """Write the images of `items` [(path, label)] to an image LMDB at `out_path`.

    root: prefix of the listed paths. resize: (height, width) or None to keep each size.
    encoding: None for raw pixels, else "jpg"/"png". shuffle: shuffle the list first with
    RandomState(seed). A missing or corrupt image stops the build with its path unless
    skip_bad, which leaves it out (later keys close the gap, so label LMDBs built from
    the returned `kept` stay aligned). Nothing is left at out_path on an error.

    Returns {"count", "kept": indices into the (shuffled) items, "items": the (shuffled) items,
    "bad": [(path, error)], "mean": (C, H, W) float64 mean of the written images or None}.
    """
    items = list(items)
    if not items:
        raise ValueError("%s: no images to write (empty set)" % out_path)
    if shuffle:
        items = [items[i] for i in np.random.RandomState(seed).permutation(len(items))]
    missing = [path for path, _ in items if not os.path.isfile(os.path.join(root, path))]
    if missing and not skip_bad:
        raise BadImageError("%d of %d images are missing, the first: %s (SKIP_BAD=1 / --skip-bad "
                            "leaves them out)" % (len(missing), len(items),
                                                  os.path.join(root, missing[0])))
    processes = processes or os.cpu_count() or 1
    tasks = [(items[i:i + CHUNK], root, resize, gray, encoding)
             for i in range(0, len(items), CHUNK)]
    kept, bad, pixel_sum = [], [], None
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    workers = _Workers(_load_chunk, min(processes, len(tasks))) \
        if processes > 1 and len(tasks) > 1 else None
    results = workers.imap(tasks) if workers else map(_load_chunk, tasks)
    # Raw pixels of a known size: the whole database's size is known before the first image.
    channels = 1 if gray else 3
    expected = len(items) * lmdb_io.record_bytes(channels * resize[0] * resize[1] + 16) \
        if resize and not encoding else None
    try:
        with lmdb_io.LmdbWriter(out_path, expected_bytes=expected) as db, \
                tqdm(total=len(items), desc=desc or os.path.basename(out_path), unit="img",
                     leave=False) as progress:
            for chunk_index, (records, chunk_bad, chunk_sum) in enumerate(results):
                if chunk_bad and not skip_bad:
                    raise BadImageError(chunk_bad[0][1] + " (SKIP_BAD=1 / --skip-bad leaves it out)")
                bad.extend(chunk_bad)
                for offset, record in enumerate(records):
                    if record is not None:
                        index = chunk_index * CHUNK + offset
                        db.put(lmdb_io.image_key(len(kept), items[index][0]), record)
                        kept.append(index)
                if chunk_sum is not None:
                    if pixel_sum is None or pixel_sum.shape == chunk_sum.shape:
                        pixel_sum = chunk_sum if pixel_sum is None else pixel_sum + chunk_sum
                    else:
                        pixel_sum = np.full(chunk_sum.shape, np.nan)
                progress.update(len(records))
            if not kept:
                raise BadImageError("%s: none of the %d images could be read (the first: %s)"
                                    % (out_path, len(items), bad[0][1]))
    finally:
        if workers:
            workers.stop()
    mean = None
    if pixel_sum is not None and not np.isnan(pixel_sum).any():
        mean = (pixel_sum / len(kept)).transpose(2, 0, 1)
    return {"count": len(kept), "kept": np.asarray(kept, np.int64), "items": items,
            "bad": bad, "mean": mean}


def build_array_lmdb(out_path, images, labels, names, encoding=None, desc=None):
    """Write in-memory images (M, C, H, W) uint8 as an image LMDB keyed `%08d_<name>`."""
    images = np.asarray(images)
    if len(images) == 0:
        raise ValueError("%s: no images to write (empty set)" % out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    expected = len(images) * lmdb_io.record_bytes(images[0].nbytes + 16) if not encoding else None
    with lmdb_io.LmdbWriter(out_path, expected_bytes=expected) as db:
        for index in tqdm(range(len(images)), desc=desc or os.path.basename(out_path),
                          unit="img", leave=False):
            # Encoded images keep the stored channel order, so decoding gives back the raw layout.
            record = image_datum(images[index].transpose(1, 2, 0), labels[index], encoding)
            db.put(lmdb_io.image_key(index, names[index]), record)
    return len(images)
