"""Mean files: the per-pixel mean of an image LMDB as a 1xCxHxW BlobProto, as
`compute_image_mean` writes it (raw or encoded records)."""
import cv2
import numpy as np
from caffe.proto import caffe_pb2
from tqdm import tqdm

from noisy_label.io import blob_io, lmdb_io


def datum_image(datum, lmdb_path: str = "LMDB", key: bytes = b"?") -> np.ndarray:
    """(C, H, W) uint8 pixels of an image Datum, decoding an encoded one."""
    where = "%s: record %s" % (lmdb_path, bytes(key).decode("utf-8", "replace"))
    if datum.encoded:
        image = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED) \
            if datum.data else None
        if image is None:
            raise ValueError("%s: cannot decode its encoded image" % where)
        return image.reshape(image.shape[0], image.shape[1], -1).transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    if not datum.data or len(datum.data) != int(np.prod(shape)):
        raise ValueError("%s holds %d bytes of pixels, not the %s its shape needs: not an image "
                         "Datum" % (where, len(datum.data), "x".join(map(str, shape))))
    return np.frombuffer(datum.data, np.uint8).reshape(shape)


def _raw_prefix(datum):
    """The serialized bytes that precede the pixels in a raw Datum shaped like `datum`."""
    size = datum.channels * datum.height * datum.width
    header = caffe_pb2.Datum(channels=datum.channels, height=datum.height, width=datum.width,
                             data=bytes(size)).SerializeToString()
    return header[:len(header) - size]


def compute_mean(lmdb_path: str) -> np.ndarray:
    """(C, H, W) float64 per-pixel mean of the images in an LMDB; ValueError if sizes differ."""
    env = lmdb_io.open_readonly(lmdb_path)
    total = prefix = first_key = None
    count = 0
    try:
        with env.begin(buffers=True) as txn:
            for key, value in tqdm(txn.cursor(), total=env.stat()["entries"], unit="rec",
                                   desc="mean", leave=False):
                if prefix is not None and value[:len(prefix)] == prefix:
                    # Raw records of the first record's shape (all of them, usually) are summed
                    # straight from the LMDB page: no protobuf parse, no copy.
                    image = np.frombuffer(value, np.uint8, total.size, len(prefix))
                else:
                    datum = lmdb_io.parse_datum(value, lmdb_path, key)
                    image = datum_image(datum, lmdb_path, key)
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


def write_mean_file(path: str, mean: np.ndarray) -> None:
    """Save a (C, H, W) mean as a 1xCxHxW BlobProto."""
    blob_io.write_blobproto(path, np.asarray(mean)[None])
