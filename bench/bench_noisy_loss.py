"""Cost of the SoftmaxWithNoisyLabelLoss Python layer against stock SoftmaxWithLoss.

    python bench/bench_noisy_loss.py [--iters 40] [--batch 100]          # CIFAR-quick, CPU
    python bench/bench_noisy_loss.py --net clothing1M --gpu              # CaffeNet, cuDNN

1. A two-tower net (`*_clean`: CIFAR-quick with 10 outputs, or CaffeNet with 14 and the
   Clothing1M noise-type tower; `*_ntype`: 3 outputs; one Input), one forward+backward per
   iteration, with the noisy-label loss on both towers versus the same net with stock
   SoftmaxWithLoss in its place: on the clean logits with the noisy labels, and on the
   noise-type logits (so that, as with the noisy-label loss, both towers back-propagate). The
   two nets alternate iteration by iteration; medians are reported. On the GPU each iteration
   ends with a device sync (a copy of one gradient to the host), so the time is the work's.
2. The layer alone (M = 128, N = 14) against a stock SoftmaxWithLoss on the same logits.
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("GLOG_minloglevel", "2")  # before caffe: no net-construction logs

import caffe
import machine
import numpy as np
from google.protobuf import text_format
from tqdm import tqdm

from noisy_label import datasets
from noisy_label.experiments import nets

NUM_CLASSES = 10


def input_layer(net, shapes):
    """An Input layer whose tops are the names of `shapes` ({top: shape})."""
    nets.add_layer(net, "input", "Input", top=list(shapes),
                     input_param=dict(shape=[dict(dim=list(s)) for s in shapes.values()]))


def noisy_loss_layer(net, bottoms, matrix_c_file):
    nets.add_layer(net, "loss_noisy", "Python", bottoms, ["loss_noisy"], loss_weight=[1.0],
                     param=[{"lr_mult": 0, "decay_mult": 0}],
                     python_param=dict(module="noisy_label.layers", layer="SoftmaxWithNoisyLabelLoss",
                                       param_str='{"matrix_c": "%s"}' % matrix_c_file))


def stock_loss_layer(net, name, logits, label):
    nets.add_layer(net, name, "SoftmaxWithLoss", [logits, label], loss_weight=[1.0],
                     loss_param=dict(ignore_label=-1, normalization=2))


NETS = {"cifar10": dict(size=32, batch=100, target=2),       # target: the issues' overhead bound
        "clothing1M": dict(size=227, batch=128, target=3)}


def two_tower_net(name, batch, matrix_c_file, stock):
    """The dataset's `_clean` and `_ntype` towers on one input, either loss."""
    ds = datasets.get_dataset(name)
    tower = nets.TOWERS[ds.tower]
    net = nets._net("%s_two_towers_%s" % (name, "stock" if stock else "noisy"))
    size = NETS[name]["size"]
    input_layer(net, {"data": (batch, 3, size, size), "label_noisy": (batch,),
                      "label_ntype": (batch,)})
    clean, _ = tower(net, "data", ds.num_classes, suffix="_clean")
    ntype, _ = tower(net, "data", nets.NUM_NOISE_TYPES, suffix="_ntype", **ds.ntype_kwargs)
    if stock:
        stock_loss_layer(net, "loss_clean", clean, "label_noisy")
        stock_loss_layer(net, "loss_ntype", ntype, "label_ntype")
    else:
        noisy_loss_layer(net, [clean, ntype, "label_noisy"], matrix_c_file)
    return net


def loss_only_net(batch, num_classes, matrix_c_file, stock):
    """Logits from Parameter layers (so the loss back-propagates) straight into the loss."""
    net = nets._net("loss_only")
    for name, width in (("clean", num_classes), ("ntype", nets.NUM_NOISE_TYPES)):
        nets.add_layer(net, name, "Parameter", parameter_param=dict(shape=dict(dim=[batch, width])))
    input_layer(net, {"label_noisy": (batch,)})
    if stock:
        stock_loss_layer(net, "loss_clean", "clean", "label_noisy")
    else:
        noisy_loss_layer(net, ["clean", "ntype", "label_noisy"], matrix_c_file)
    return net


def load(net_param, work_dir, rng, num_classes):
    """caffe.Net of a NetParameter, its inputs filled with random data and labels (10% -1)."""
    path = os.path.join(work_dir, net_param.name + ".prototxt")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(net_param))
    net = caffe.Net(path, caffe.TRAIN)
    for name, blob in net.blobs.items():
        if name.startswith("label"):
            high = num_classes if name == "label_noisy" else nets.NUM_NOISE_TYPES
            blob.data[...] = np.where(rng.rand(*blob.data.shape) < 0.1, -1,
                                      rng.randint(high, size=blob.data.shape))
        elif name in ("data", "clean", "ntype"):
            blob.data[...] = rng.randn(*blob.data.shape)
    return net


def iteration_ms(net):
    start = time.perf_counter()
    net.forward()
    net.backward()
    # GPU kernels run asynchronously: reading a gradient on the host waits for them.
    first = next(iter(net.params.values()))[0]
    float(first.diff.flat[0])
    return 1000 * (time.perf_counter() - start)


def compare(nets, iters, warmup=3, desc=""):
    """Median ms per forward+backward of each net, run alternately (order flipped every round)."""
    for net in nets:
        for _ in range(warmup):
            iteration_ms(net)
    times = [[] for _ in nets]
    for i in tqdm(range(iters), desc=desc, leave=False):
        order = range(len(nets)) if i % 2 == 0 else reversed(range(len(nets)))
        for k in order:
            times[k].append(iteration_ms(nets[k]))
    return [float(np.median(t)) for t in times]


def random_matrix_c(rng, num_classes):
    """A column-stochastic C with a zero diagonal."""
    matrix_c = rng.rand(num_classes, num_classes)
    np.fill_diagonal(matrix_c, 0)
    return matrix_c / matrix_c.sum(axis=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations per net")
    parser.add_argument("--net", choices=sorted(NETS), default="cifar10",
                        help="cifar10: CIFAR-quick towers; clothing1M: CaffeNet towers")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch of the two-tower nets (default: 100 cifar10, 128 clothing1M)")
    parser.add_argument("--gpu", type=int, nargs="?", const=0, default=None, metavar="ID",
                        help="run on this GPU (default 0; cuDNN where the build has it)")
    args = parser.parse_args()
    batch = args.batch or NETS[args.net]["batch"]
    if args.gpu is not None:
        from noisy_label.experiments import pipeline
        if not pipeline.gpu_available():
            print("bench_noisy_loss: --gpu skipped: no GPU here, or the project's Caffe is "
                  "CPU_ONLY (make caffe CUDA=1 on a GPU machine)")
            return
    if args.gpu is None:
        caffe.set_mode_cpu()
        device = "CPU"
    else:
        caffe.set_mode_gpu()
        caffe.set_device(args.gpu)
        device = "GPU %d: %s" % (args.gpu, machine.gpu_model(args.gpu))
    rng = np.random.RandomState(0)
    print("machine: %s; %s" % (machine.describe(), device))
    with tempfile.TemporaryDirectory() as work_dir:
        c_files = {}
        for num_classes in (NUM_CLASSES, 14):
            c_files[num_classes] = os.path.join(work_dir, "matrix_c_%d.npy" % num_classes)
            np.save(c_files[num_classes], random_matrix_c(rng, num_classes))

        num_classes = datasets.get_dataset(args.net).num_classes
        pair = [load(two_tower_net(args.net, batch, c_files[num_classes], stock), work_dir, rng,
                     num_classes) for stock in (True, False)]
        stock_ms, noisy_ms = compare(pair, args.iters, desc="two-tower nets")
        print("%s two-tower net, batch %d, %s, forward+backward (median of %d):"
              % ("CIFAR-quick" if args.net == "cifar10" else "CaffeNet (Clothing1M)", batch,
                 device, args.iters))
        print("  stock SoftmaxWithLoss x2:      %8.2f ms/iter" % stock_ms)
        print("  SoftmaxWithNoisyLabelLoss:     %8.2f ms/iter" % noisy_ms)
        print("  overhead: %+.2f%% (ratio %.4f; issue target: at most +%d%%)"
              % (100 * (noisy_ms / stock_ms - 1), noisy_ms / stock_ms, NETS[args.net]["target"]))
        del pair

        pair = [load(loss_only_net(128, 14, c_files[14], stock), work_dir, rng, 14)
                for stock in (True, False)]
        alone = compare(pair, 20 * args.iters, desc="loss layers alone")
        print("Loss layer alone, M = 128, N = 14, forward+backward (median of %d):" % (20 * args.iters))
        print("  SoftmaxWithNoisyLabelLoss:     %8.3f ms" % alone[1])
        print("  stock SoftmaxWithLoss:         %8.3f ms" % alone[0])
        # The net-level ratio carries the noise of a ~100 ms iteration; this bound does not.
        print("  their difference is %.2f%% of the stock two-tower iteration"
              % (100 * (alone[1] - alone[0]) / stock_ms))


if __name__ == "__main__":
    main()
