#!/usr/bin/env python3
"""Copy trained layers from one net into another with a layer-name map, and save the result.

    .venv/bin/python tools/copy_params.py clean_trainval.prototxt clean.caffemodel \\
        noisy_label_loss_trainval.prototxt init.caffemodel \\
        --map conv1:conv1_clean conv2:conv2_clean ...

As the original release's copy_params.py, every layer that both nets have by the same name
is copied too (a bare LAYER in --map says so explicitly). --target-weights starts from
existing weights (e.g. to add a second net's layers to the output of a first call);
otherwise the target's fillers.
"""
import argparse
import os

# Caffe's INFO lines of building the two nets say nothing a user needs; errors still show.
os.environ.setdefault("GLOG_minloglevel", "1")

from noisy_label import cli
from noisy_label.experiments import net_surgery  # noqa: E402
from noisy_label.io.prototxt import read_prototxt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("source_net", help="source net prototxt")
    parser.add_argument("source_weights", help="source .caffemodel")
    parser.add_argument("target_net", help="target net prototxt")
    parser.add_argument("out", help="output .caffemodel")
    parser.add_argument("--map", nargs="*", default=[], metavar="SOURCE[:TARGET]",
                        help="renames, besides the layers both nets have by the same name")
    parser.add_argument("--target-weights", default=None, help="start from these target weights")
    args = parser.parse_args()
    layer_map = net_surgery.parse_layer_map(args.map)
    check_files(args)
    copied = net_surgery.copy_params(args.source_net, args.source_weights, args.target_net,
                                     args.out, layer_map, args.target_weights)
    print("copied %s -> %s" % (", ".join("%s->%s" % pair for pair in copied),
                               args.out))


def check_files(args):
    """Parse the nets and weights first: Caffe aborts (glog CHECK) on a file it cannot parse."""
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError
    for path in filter(None, (args.source_net, args.source_weights, args.target_net,
                              args.target_weights)):
        if not os.path.isfile(path):
            raise IOError(("%s is not a file" if os.path.exists(path) else "missing file %s")
                          % path)
    for path in (args.source_net, args.target_net):
        read_prototxt(path, caffe_pb2.NetParameter())
    for path in filter(None, (args.source_weights, args.target_weights)):
        weights = caffe_pb2.NetParameter()
        with open(path, "rb") as f:
            try:
                weights.ParseFromString(f.read())
            except DecodeError:
                weights.Clear()
        if not (weights.layer or weights.layers):
            raise ValueError("%s is not a .caffemodel (trained weights)" % path)


if __name__ == "__main__":
    cli.run(main, "copy_params")
