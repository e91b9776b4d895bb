"""Copy trained parameters between nets with a layer-name map, as the original release's
init scripts did (the clean net into the joint net's `*_clean` tower, the noise-type net's
convs into its `*_ntype` tower), through pycaffe's `Net.params` and `Net.save`."""
import os


def parse_layer_map(entries):
    """[(source layer, target layer)] from ["conv1:conv1_clean", "ip1"] (a bare name maps to
    itself); one source may go to several targets."""
    pairs = []
    for entry in entries:
        source, colon, target = entry.partition(":")
        if not source or (colon and not target):
            raise ValueError("layer map entry %r: expected SOURCE:TARGET or LAYER" % entry)
        pairs.append((source, target or source))
    return pairs


def copy_blobs(source_params, target_params, layer_map, source_name="source", target_name="target"):
    """Copy params[source][i].data into params[target][i].data for each pair of `layer_map`.

    layer_map: {source: target} or [(source, target)]. source_params, target_params: pycaffe
    `Net.params`-like mappings of layer -> [blob]. Raises ValueError naming the layer, the net
    and the shapes when a layer is missing or differs.
    """
    pairs = sorted(layer_map.items() if hasattr(layer_map, "items") else layer_map)
    for source, target in pairs:
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


def copy_params(source_net, source_weights, target_net, target_weights_out, layer_map,
                target_weights_in=None):
    """Load the source net with its weights and the target net (with target_weights_in, else its
    fillers), copy the mapped layers, save the target's weights to target_weights_out."""
    import caffe
    for path in (source_net, source_weights, target_net, target_weights_in):
        if path and not os.path.isfile(path):
            raise IOError("missing file %s" % path)
    caffe.set_mode_cpu()
    # TRAIN phase: a joint net's noise-type tower exists only in TRAIN.
    source = caffe.Net(source_net, caffe.TRAIN, weights=source_weights)
    target = caffe.Net(target_net, caffe.TRAIN, weights=target_weights_in) if target_weights_in \
        else caffe.Net(target_net, caffe.TRAIN)
    copy_blobs(source.params, target.params, layer_map,
               "%s (%s)" % (source_net, source_weights), target_net)
    # Net.save writes in place; go through a temporary name so a crash leaves no half file.
    os.makedirs(os.path.dirname(os.path.abspath(target_weights_out)), exist_ok=True)
    tmp = target_weights_out + ".tmp"
    target.save(tmp)
    os.replace(tmp, target_weights_out)
    return target_weights_out
