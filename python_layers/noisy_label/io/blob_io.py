"""BlobProto files (`.binaryproto`): mean files and the matrix C.

Writes go to a temporary name in the same directory and are renamed when whole.
"""

import numpy as np

from noisy_label.io import atomic


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write bytes to `path` via a temporary file in the same directory, then rename."""
    atomic.write_bytes(path, data)


def write_blobproto(path: str, array: np.ndarray) -> None:
    """Save a float array as a BlobProto with its shape (BVLC's `shape` field)."""
    from caffe.proto import caffe_pb2
    array = np.asarray(array, dtype=np.float32)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(array.ravel().tolist())
    atomic_write_bytes(path, blob.SerializeToString())


def read_blobproto(path: str) -> np.ndarray:
    """Load a BlobProto as a float32 array, shaped by `shape` or the legacy num/channels/height/width."""
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    blob = caffe_pb2.BlobProto()
    with open(path, "rb") as f:
        try:
            blob.ParseFromString(f.read())
        except DecodeError as e:
            raise ValueError("%s is not a BlobProto (.binaryproto): %s" % (path, e))
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    data = np.asarray(blob.data, dtype=np.float32)
    if data.size != int(np.prod(shape)):
        raise ValueError("%s: BlobProto holds %d values but its shape %s needs %d"
                         % (path, data.size, shape, int(np.prod(shape))))
    return data.reshape(shape)
