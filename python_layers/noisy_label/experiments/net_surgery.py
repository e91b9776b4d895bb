"""Copy trained parameters between nets with a layer-name map, as the original release's
init step did (the clean net into the joint net's `*_clean` tower, the noise-type net into
its `*_ntype` tower), through pycaffe's `Net.params` and `Net.save`.

As the original's copy_params.py, a copy takes the renames it is given plus every layer that
both nets have by the same name.
"""
import os
from typing import List, Optional, Tuple

from noisy_label.io import atomic


def parse_layer_map(entries) -> List[Tuple[str, str]]:
    """[(source layer, target layer)] from ["conv1:conv1_clean", "ip1"] (a bare name maps to
    itself); one source may go to several targets."""
    pairs = []
    for entry in entries:
        source, colon, target = entry.partition(":")
        if not source or (colon and not target):
            raise ValueError("layer map entry %r: expected SOURCE:TARGET or LAYER" % entry)
        pairs.append((source, target or source))
    return pairs


def layer_map(source_layers, target_layers, renames=()) -> List[Tuple[str, str]]:
    """[(source layer, target layer)], sorted: `renames` ({source: target} or pairs; a source
    may go to several targets) plus every layer in both source_layers and target_layers,
    mapped to itself. Renaming a layer that the target has by its own name is a ValueError."""
    pairs = set(renames.items() if hasattr(renames, "items") else renames)
    for layer in set(source_layers) & set(target_layers):
        elsewhere = sorted(target for source, target in pairs if source == layer and target != layer)
        if elsewhere:
            raise ValueError("layer %r is in both nets but is mapped to %s: a layer the target "
                             "has by the same name is copied to itself" % (layer, elsewhere))
        pairs.add((layer, layer))
    return sorted(pairs)


def copy_blobs(source_params, target_params, pairs, source_name: str = "source",
               target_name: str = "target") -> None:
    """Copy params[source][i].data into params[target][i].data for each pair of `pairs`.

    pairs: {source: target} or [(source, target)]. source_params, target_params: pycaffe
    `Net.params`-like mappings of layer -> [blob]. Raises ValueError naming the layer, the net
    and the shapes when a layer is missing or differs.
    """
    for source, target in sorted(pairs.items() if hasattr(pairs, "items") else pairs):
        for layer, params, net in ((source, source_params, source_name),
                                   (target, target_params, target_name)):
            if layer not in params:
                raise ValueError("layer %r has no parameters in %s (layers with parameters: %s)"
                                 % (layer, net, ", ".join(params.keys())))
        source_blobs, target_blobs = source_params[source], target_params[target]
        if len(source_blobs) != len(target_blobs):
            raise ValueError("%s: layer %r has %d parameter blobs but %s's %r has %d" % (
                source_name, source, len(source_blobs), target_name, target, len(target_blobs)))
        for i, (source_blob, target_blob) in enumerate(zip(source_blobs, target_blobs)):
            if source_blob.data.shape != target_blob.data.shape:
                raise ValueError("%s: blob %d of layer %r is %s but %s's %r needs %s" % (
                    source_name, i, source, source_blob.data.shape, target_name, target,
                    target_blob.data.shape))
            target_blob.data[...] = source_blob.data


def blob_shape(blob) -> tuple:
    """The shape of a BlobProto: its `shape`, else the legacy num/channels/height/width."""
    if blob.HasField("shape"):
        return tuple(blob.shape.dim)
    return (blob.num, blob.channels, blob.height, blob.width)


def load_weights(params, path: str, net_name: str = "net") -> List[str]:
    """Copy a .caffemodel's blobs into pycaffe `Net.params` by layer name, as Caffe's
    CopyTrainedLayersFrom does, but a file that does not parse or a blob that does not fit is
    a ValueError naming the file, the layer and the shapes (Caffe would abort the process).
    Layers the net does not have are skipped. Returns the layers copied."""
    import numpy as np
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    weights = caffe_pb2.NetParameter()
    try:
        with open(path, "rb") as f:
            weights.ParseFromString(f.read())
    except DecodeError:
        raise ValueError("%s is not a .caffemodel (NetParameter): truncated or another file" % path)
    copied = []
    for layer in list(weights.layer) or list(weights.layers):   # V1 models keep `layers`
        if layer.name not in params or not layer.blobs:
            continue
        blobs = params[layer.name]
        if len(blobs) != len(layer.blobs):
            raise ValueError("%s: layer %r has %d parameter blobs but %s's has %d"
                             % (path, layer.name, len(layer.blobs), net_name, len(blobs)))
        for i, (saved, blob) in enumerate(zip(layer.blobs, blobs)):
            shape = blob_shape(saved)
            if int(np.prod(shape)) != blob.data.size or (
                    saved.HasField("shape") and shape != blob.data.shape):
                raise ValueError("%s: blob %d of layer %r is %s but %s needs %s" % (
                    path, i, layer.name, shape, net_name, blob.data.shape))
            blob.data[...] = np.asarray(saved.data, dtype=np.float32).reshape(blob.data.shape)
        copied.append(layer.name)
    return copied


def copy_params(source_net: str, source_weights: str, target_net: str, target_weights_out: str,
                renames=(), target_weights_in: Optional[str] = None) -> List[Tuple[str, str]]:
    """Load the source net with its weights and the target net (with target_weights_in, else its
    fillers), copy `renames` and the same-name layers (layer_map), save the target's weights to
    target_weights_out. Returns the {source: target} map that was copied."""
    import caffe
    for path in (source_net, source_weights, target_net, target_weights_in):
        if path and not os.path.isfile(path):
            raise IOError("missing file %s" % path)
    caffe.set_mode_cpu()
    # TRAIN phase: a joint net's noise-type tower exists only in TRAIN.
    source = caffe.Net(source_net, caffe.TRAIN)
    load_weights(source.params, source_weights, source_net)
    target = caffe.Net(target_net, caffe.TRAIN)
    if target_weights_in:
        load_weights(target.params, target_weights_in, target_net)
    pairs = layer_map(source.params.keys(), target.params.keys(), renames)
    copy_blobs(source.params, target.params, pairs,
               "%s (%s)" % (source_net, source_weights), target_net)
    # Net.save writes in place; go through a temporary name so a crash leaves no half file.
    with atomic.atomic_path(target_weights_out) as tmp:
        target.save(tmp)
    return pairs
