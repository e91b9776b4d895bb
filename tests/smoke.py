"""Smoke check of the Caffe install: scikit-learn's digits in an LMDB, a small net with a
Python layer that owns a parameter blob, trained by `caffe train` (the foundation tests use it).
"""
import os

import numpy as np

from noisy_label.io import lmdb_io

NET = """name: "digits_smoke"
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
  transform_param {{ scale: 0.0625 }} data_param {{ source: "{train}" batch_size: 64 backend: LMDB }} }}
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
  transform_param {{ scale: 0.0625 }} data_param {{ source: "{test}" batch_size: 97 backend: LMDB }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param {{ num_output: 32 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "scale1" type: "Python" bottom: "ip1" top: "scale1"
  python_param {{ module: "{module}" layer: "Scale" }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "scale1" top: "ip2"
  inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVER = """net: "{net}"
test_iter: 3
test_interval: {iters}
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
display: 20
max_iter: {iters}
snapshot: {snapshot}
snapshot_prefix: "{prefix}"
random_seed: 1
"""


def write_digits_lmdbs(out_dir, num_test=291):
    """Write the 1,797 digits (1x8x8, values 0..16) as `train` and `test` LMDBs in out_dir."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None]          # (1797, 1, 8, 8)
    order = np.random.RandomState(0).permutation(len(images))
    split = {"test": order[:num_test], "train": order[num_test:]}
    for name, idx in split.items():
        with lmdb_io.LmdbWriter(os.path.join(out_dir, name)) as db:
            for i, j in enumerate(idx):
                db.put("%08d" % i, lmdb_io.image_datum(images[j], digits.target[j]))
    return {name: os.path.join(out_dir, name) for name in split}


def write_smoke_net(out_dir, iters=200, snapshot=0, module="example_layers"):
    """Write net and solver prototxts for the smoke net into out_dir; return the solver path."""
    dbs = {name: os.path.join(out_dir, name) for name in ("train", "test")}
    if not all(os.path.isdir(p) for p in dbs.values()):
        dbs = write_digits_lmdbs(out_dir)
    net = os.path.join(out_dir, "net.prototxt")
    solver = os.path.join(out_dir, "solver.prototxt")
    with open(net, "w") as f:
        f.write(NET.format(train=dbs["train"], test=dbs["test"], module=module))
    with open(solver, "w") as f:
        f.write(SOLVER.format(net=net, iters=iters, snapshot=snapshot,
                              prefix=os.path.join(out_dir, "smoke")))
    return solver
