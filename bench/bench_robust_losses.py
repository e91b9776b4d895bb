"""Cost of the other noise-robust Python losses (bootstrapping, forward / backward correction)
against the stock SoftmaxWithLoss they replace.

    python bench/bench_robust_losses.py [--iters 40]          # CPU
    python bench/bench_robust_losses.py --gpu                 # GPU 0

1. The layer alone: logits from a Parameter layer (M = 128, N = 14, Clothing1M's size) into
   each loss, one forward+backward, against SoftmaxWithLoss on the same logits and labels.
2. In a net: the CIFAR-quick tower (batch 100, 10 classes) with each loss on its logits,
   against the same tower with SoftmaxWithLoss. The nets alternate iteration by iteration and
   medians are reported (bench_noisy_loss.compare), so both see the same machine load.
"""
import argparse
import json
import os
import tempfile

os.environ.setdefault("GLOG_minloglevel", "2")  # before caffe: no net-construction logs

import caffe
import machine
import numpy as np
from bench_noisy_loss import compare, input_layer, load, stock_loss_layer

from noisy_label.experiments import nets
from noisy_label.io import blob_io

# name: (layer, param_str without the Q file)
LOSSES = {"bootstrapping, soft": ("BootstrappingSoftmaxLoss", {"beta": 0.95, "mode": "soft"}),
          "bootstrapping, hard": ("BootstrappingSoftmaxLoss", {"beta": 0.8, "mode": "hard"}),
          "forward correction": ("ForwardCorrectedSoftmaxLoss", {"matrix_q": None}),
          "backward correction": ("BackwardCorrectedSoftmaxLoss", {"matrix_q": None})}


def loss(net, method, logits, matrix_q_file):
    """The stock SoftmaxWithLoss (method None) or a robust Python loss on (logits, label_noisy)."""
    if method is None:
        stock_loss_layer(net, "loss", logits, "label_noisy")
        return
    layer, params = LOSSES[method]
    params = {k: matrix_q_file if k == "matrix_q" else v for k, v in params.items()}
    nets.add_layer(net, "loss", "Python", [logits, "label_noisy"], ["loss"], loss_weight=[1.0],
                   python_param=dict(module="noisy_label.layers", layer=layer,
                                     param_str=json.dumps(params)))


def _net(kind, method):
    """An empty NetParameter named after the kind of net and the loss (its prototxt's name)."""
    return nets._net("%s_%s" % (kind, (method or "stock").replace(", ", "_").replace(" ", "_")))


def loss_only_net(method, batch, num_classes, matrix_q_file):
    net = _net("loss_only", method)
    nets.add_layer(net, "logits", "Parameter",
                   parameter_param=dict(shape=dict(dim=[batch, num_classes])))
    input_layer(net, {"label_noisy": (batch,)})
    loss(net, method, "logits", matrix_q_file)
    return net


def tower_net(method, batch, matrix_q_file):
    net = _net("cifar_quick", method)
    input_layer(net, {"data": (batch, 3, 32, 32), "label_noisy": (batch,)})
    logits, _ = nets.TOWERS["cifar_quick"](net, "data", 10)
    loss(net, method, logits, matrix_q_file)
    return net


def matrix_q(rng, num_classes, noise=0.4):
    """A column-stochastic, invertible Q[noisy, true]."""
    off = rng.rand(num_classes, num_classes) * (1 - np.eye(num_classes))
    return off / off.sum(axis=0) * noise + np.eye(num_classes) * (1 - noise)


def table(title, build, iters, work_dir, rng, num_classes):
    """Median ms of each loss's net beside the stock one's, measured alternately; printed."""
    methods = [None] + list(LOSSES)
    loaded = [load(build(m), work_dir, rng, num_classes) for m in methods]
    times = compare(loaded, iters, desc=title)
    print("%s, forward+backward (median of %d):" % (title, iters))
    print("  %-24s %9.3f ms" % ("stock SoftmaxWithLoss", times[0]))
    for method, ms in zip(methods[1:], times[1:]):
        print("  %-24s %9.3f ms   ratio %.3f to stock" % (method, ms, ms / times[0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations per net")
    parser.add_argument("--gpu", type=int, nargs="?", const=0, default=None, metavar="ID",
                        help="run on this GPU (default 0)")
    args = parser.parse_args()
    if args.gpu is not None:
        from noisy_label.experiments import pipeline
        if not pipeline.gpu_available():
            print("bench_robust_losses: --gpu skipped: no GPU here, or the project's Caffe is "
                  "CPU_ONLY (make caffe CUDA=1 on a GPU machine)")
            return
        caffe.set_mode_gpu()
        caffe.set_device(args.gpu)
        device = "GPU %d: %s" % (args.gpu, machine.gpu_model(args.gpu))
    else:
        caffe.set_mode_cpu()
        device = "CPU"
    rng = np.random.RandomState(0)
    print("machine: %s; %s" % (machine.describe(), device))
    with tempfile.TemporaryDirectory() as work_dir:
        q_files = {}
        for num_classes in (10, 14):
            q_files[num_classes] = os.path.join(work_dir, "matrix_q_%d.binaryproto" % num_classes)
            blob_io.write_blobproto(q_files[num_classes], matrix_q(rng, num_classes)[None, None])
        table("Loss layer alone, M = 128, N = 14",
              lambda m: loss_only_net(m, 128, 14, q_files[14]), 20 * args.iters, work_dir, rng, 14)
        table("CIFAR-quick net, batch 100, N = 10",
              lambda m: tower_net(m, 100, q_files[10]), args.iters, work_dir, rng, 10)


if __name__ == "__main__":
    main()
