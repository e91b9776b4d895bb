"""Mean files: the per-pixel mean of an image LMDB as a 1xCxHxW BlobProto, as
`compute_image_mean` writes it (raw or encoded records)."""
import os

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

from caffe.proto import caffe_pb2
from noisy_label import blob_io


def datum_image(datum):
    """(C, H, W) uint8 pixels of an image Datum, decoding an encoded one."""
    if datum.encoded:
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError("cannot decode an encoded Datum")
        return image.reshape(image.shape[0], image.shape[1], -1).transpose(2, 0, 1)
    return np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)


def _raw_prefix(datum):
    """The serialized bytes that precede the pixels in a raw Datum shaped like `datum`."""
    size = datum.channels * datum.height * datum.width
    header = caffe_pb2.Datum(channels=datum.channels, height=datum.height, width=datum.width,
                             data=bytes(size)).SerializeToString()
    return header[:len(header) - size]


def compute_mean(lmdb_path):
    """(C, H, W) float64 per-pixel mean of the images in an LMDB; ValueError if sizes differ."""
    if not os.path.isdir(lmdb_path):
        raise IOError("no LMDB at %s" % lmdb_path)
    env = lmdb.open(lmdb_path, readonly=True, lock=False, subdir=True)
    total = prefix = first_key = None
    count = 0
    datum = caffe_pb2.Datum()
    try:
        with env.begin(buffers=True) as txn:
            for key, value in tqdm(txn.cursor(), total=env.stat()["entries"], unit="rec",
                                   desc="mean", leave=False):
                if prefix is not None and value[:len(prefix)] == prefix:
                    # Raw records of the first record's shape (all of them, usually) are summed
                    # straight from the LMDB page: no protobuf parse, no copy.
                    image = np.frombuffer(value, np.uint8, total.size, len(prefix))
                else:
                    datum.ParseFromString(value)
                    image = datum_image(datum)
                    if total is None:
                        total, first_key = np.zeros(image.shape, np.float64), bytes(key).decode()
                        prefix = None if datum.encoded else _raw_prefix(datum)
                    elif image.shape != total.shape:
                        raise ValueError("%s: record %s is %s but %s is %s; a mean needs one size"
                                         % (lmdb_path, bytes(key).decode(),
                                            "x".join(map(str, image.shape)), first_key,
                                            "x".join(map(str, total.shape))))
                # cv2.accumulate adds uint8 into float64 with SIMD.
                cv2.accumulate(image.reshape(len(total), -1), total.reshape(len(total), -1))
                count += 1
    finally:
        env.close()
    if not count:
        raise ValueError("%s is empty: no mean" % lmdb_path)
    return total / count


def write_mean_file(path, mean):
    """Save a (C, H, W) mean as a 1xCxHxW BlobProto."""
    blob_io.write_blobproto(path, np.asarray(mean)[None])
