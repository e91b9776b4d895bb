"""Clothing1M (Xiao et al., CVPR 2015): 14 classes, 1M images with noisy labels from the
web, 72k with clean labels; the layout of the original release under DATA_ROOT
(noisy_label.datasets.key_lists), images resized to RESIZE x RESIZE; CaffeNet from ImageNet
weights."""
from noisy_label import paths
from noisy_label.datasets.base import Option, register
from noisy_label.datasets.key_lists import MAX_UPSAMPLE, KeyListDataset

CAFFENET_URL = "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel"


@register
class Clothing1M(KeyListDataset):
    name = "clothing1M"
    num_classes = 14
    options = (Option("resize", int, 256, "resize images to RESIZE x RESIZE (0 keeps each size)"),
               Option("upsample", float, 1.0, "clean train keys per noisy key in the mixed set "
                      "(0 to %d)" % MAX_UPSAMPLE))
    tower = "caffenet"
    image_shape = (3, 256, 256)   # RESIZE
    transform = {"crop_size": 227, "mirror": True}
    train_batch, test_batch = 128, 100
    solver = dict(momentum=0.9, weight_decay=0.0005, display=20, average_loss=20,
                  lr_policy="step", gamma=0.1, test_initialization=True, test_interval=200)
    # The original release's solvers, snapshots every 10,000 iterations included. The noise-type
    # stage keeps its test_iter (75): the size of ntype_val depends on the kv files' overlap.
    schedules = {"clean": dict(base_lr=0.001, stepsize=10000, max_iter=15000, snapshot=10000),
                 "ntype": dict(base_lr=0.001, stepsize=3000, max_iter=5000, test_iter=75),
                 "noisy_label_loss_stage1": dict(base_lr=0.001, stepsize=50000, max_iter=100000,
                                                 snapshot=10000),
                 "noisy_label_loss_stage2": dict(base_lr=0.001, stepsize=50000, max_iter=160000,
                                                 snapshot=10000)}
    clean_head = "_clean"
    ntype_kwargs = {"fc7_outputs": 1024, "fc67_suffix": "_ntype"}
    ntype_head_lr_mult = 1
    val_lmdb, ntype_val_lmdb, test_lmdb = paths.CLEAN_VAL, paths.NTYPE_VAL, paths.CLEAN_TEST
    record_counts = {paths.CLEAN_VAL: 14313, paths.CLEAN_TEST: 10526}
    # From the original release's logs (the paper reports 0.7824 for ours).
    reference_accuracy = {"clean": 0.724, "ntype": 0.641, "ours_stage1": 0.756, "ours": 0.773}
    reference_name = "Clothing1M"
    initial_weights = ("bvlc_reference_caffenet.caffemodel", CAFFENET_URL)

    def resize_shape(self, opts):
        resize = int(opts["resize"])
        if resize < 0:
            raise ValueError("RESIZE=%d: it must be 0 (keep each size) or more" % resize)
        return (resize, resize) if resize else None
