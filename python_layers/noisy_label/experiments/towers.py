"""Prototxt building blocks (in the spirit of caffe.net_spec) and the towers: one definition
per architecture, its layer names taking a suffix, so that the clean net, the noise-type net
and the joint net's two towers are the same layers under other names."""
from typing import Optional

from noisy_label.core.noisy_loss import NUM_NOISE_TYPES  # noqa: F401  (nets and benches use it)

TRAIN, TEST = 0, 1
PHASE_TRAIN = {"include": [{"phase": TRAIN}]}


def _assign(message, params):
    """Fill a protobuf message from nested dicts / lists (as caffe.net_spec does)."""
    for key, value in params.items():
        field = getattr(message, key)
        if isinstance(value, dict):
            _assign(field, value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _assign(field.add(), item)
                else:
                    field.append(item)
        else:
            try:
                setattr(message, key, value)
            except (TypeError, ValueError) as e:   # a SET= value of the wrong type, say
                raise ValueError("%s.%s = %r: %s" % (type(message).__name__, key, value, e))


def add_layer(net, name: str, type_: str, bottom=(), top=None, **params):
    """Append a LayerParameter to `net`; `top` defaults to [name]."""
    layer = net.layer.add()
    layer.name, layer.type = name, type_
    layer.bottom.extend(bottom)
    layer.top.extend([name] if top is None else top)
    _assign(layer, params)
    return layer


def _learnable(lr_mult: int = 1, std: float = 0.01, bias: float = 0.0, bias_decay: int = 0):
    """param / filler settings for a conv or inner-product layer (biases: 2x lr, bias_decay)."""
    return dict(param=[{"lr_mult": lr_mult, "decay_mult": 1},
                       {"lr_mult": 2 * lr_mult, "decay_mult": bias_decay}],
                filler={"weight_filler": {"type": "gaussian", "std": std},
                        "bias_filler": {"type": "constant", "value": bias}})


def conv(net, name: str, bottom, num_output: int, kernel_size: int, std: float, pad: int = 0,
         stride: int = 1, group: int = 1, bias: float = 0.0, lr_mult: int = 1, bias_decay: int = 0,
         **extra):
    spec = _learnable(lr_mult, std, bias, bias_decay)
    cp = dict(num_output=num_output, kernel_size=[kernel_size], pad=[pad], stride=[stride],
              group=group, **spec["filler"])
    return add_layer(net, name, "Convolution", [bottom], param=spec["param"],
                     convolution_param=cp, **extra)


def fc(net, name: str, bottom, num_output: int, std: float, bias: float = 0.0, lr_mult: int = 1,
       bias_decay: int = 0, **extra):
    spec = _learnable(lr_mult, std, bias, bias_decay)
    return add_layer(net, name, "InnerProduct", [bottom], param=spec["param"],
                     inner_product_param=dict(num_output=num_output, **spec["filler"]), **extra)


def relu(net, name: str, blob: str, **extra):
    return add_layer(net, name, "ReLU", [blob], [blob], **extra)


def pool(net, name: str, bottom: str, method: int, kernel_size: int = 3, stride: int = 2, **extra):
    return add_layer(net, name, "Pooling", [bottom],
                     pooling_param=dict(pool=method, kernel_size=kernel_size, stride=stride), **extra)


POOL_MAX, POOL_AVE = 0, 1

# ---- towers: each returns (name of its output blob, names of its conv layers) --------


def cifar_quick_tower(net, data: str, num_output: int, suffix: str = "",
                      head_suffix: Optional[str] = None, head_lr_mult: int = 1,
                      bias_decay: int = 0, **extra):
    """BVLC's CIFAR-10 quick net. Layers conv1..conv3, ip1, ip2 + suffix (head: head_suffix)."""
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 32, 5, 0.0001, pad=2, **learn)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, **extra)
    relu(net, "relu1" + s, "pool1" + s, **extra)
    conv(net, "conv2" + s, "pool1" + s, 32, 5, 0.01, pad=2, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_AVE, **extra)
    conv(net, "conv3" + s, "pool2" + s, 64, 5, 0.01, pad=2, **learn)
    relu(net, "relu3" + s, "conv3" + s, **extra)
    pool(net, "pool3" + s, "conv3" + s, POOL_AVE, **extra)
    fc(net, "ip1" + h, "pool3" + s, 64, 0.1, **learn)
    fc(net, "ip2" + h, "ip1" + h, num_output, 0.1, lr_mult=head_lr_mult, **learn)
    return "ip2" + h, ["conv1", "conv2", "conv3"]


def digits_tower(net, data: str, num_output: int, suffix: str = "",
                 head_suffix: Optional[str] = None, head_lr_mult: int = 1, bias_decay: int = 0,
                 **extra):
    """A small conv net for the 8x8 digits: conv1, conv2 (3x3), ip1 (64), ip2."""
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 16, 3, 0.1, pad=1, **learn)
    relu(net, "relu1" + s, "conv1" + s, **extra)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, kernel_size=2, stride=2, **extra)
    conv(net, "conv2" + s, "pool1" + s, 32, 3, 0.1, pad=1, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_MAX, kernel_size=2, stride=2, **extra)
    fc(net, "ip1" + h, "pool2" + s, 64, 0.1, **learn)
    relu(net, "relu3" + h, "ip1" + h, **extra)
    fc(net, "ip2" + h, "ip1" + h, num_output, 0.1, lr_mult=head_lr_mult, **learn)
    return "ip2" + h, ["conv1", "conv2"]


def caffenet_tower(net, data: str, num_output: int, suffix: str = "",
                   head_suffix: Optional[str] = None, head_lr_mult: int = 1,
                   fc7_outputs: int = 4096, fc67_suffix: Optional[str] = None, bias_decay: int = 0,
                   **extra):
    """BVLC reference CaffeNet: conv1..conv5 + suffix, fc6/fc7 + fc67_suffix, fc8 + head_suffix.

    The clean net keeps ImageNet's names up to fc7 (so `-weights` CaffeNet fills them);
    the noise-type net has its own, narrower fc6_ntype/fc7_ntype.
    """
    s, h = suffix, suffix if head_suffix is None else head_suffix
    learn = dict(extra, bias_decay=bias_decay)
    conv(net, "conv1" + s, data, 96, 11, 0.01, stride=4, **learn)
    relu(net, "relu1" + s, "conv1" + s, **extra)
    pool(net, "pool1" + s, "conv1" + s, POOL_MAX, **extra)
    lrn = dict(lrn_param=dict(local_size=5, alpha=0.0001, beta=0.75))
    add_layer(net, "norm1" + s, "LRN", ["pool1" + s], **dict(lrn, **extra))
    conv(net, "conv2" + s, "norm1" + s, 256, 5, 0.01, pad=2, group=2, bias=1.0, **learn)
    relu(net, "relu2" + s, "conv2" + s, **extra)
    pool(net, "pool2" + s, "conv2" + s, POOL_MAX, **extra)
    add_layer(net, "norm2" + s, "LRN", ["pool2" + s], **dict(lrn, **extra))
    conv(net, "conv3" + s, "norm2" + s, 384, 3, 0.01, pad=1, **learn)
    relu(net, "relu3" + s, "conv3" + s, **extra)
    conv(net, "conv4" + s, "conv3" + s, 384, 3, 0.01, pad=1, group=2, bias=1.0, **learn)
    relu(net, "relu4" + s, "conv4" + s, **extra)
    conv(net, "conv5" + s, "conv4" + s, 256, 3, 0.01, pad=1, group=2, bias=1.0, **learn)
    relu(net, "relu5" + s, "conv5" + s, **extra)
    pool(net, "pool5" + s, "conv5" + s, POOL_MAX, **extra)
    f = suffix if fc67_suffix is None else fc67_suffix
    fc6, fc7 = "fc6" + f, "fc7" + f
    fc(net, fc6, "pool5" + s, 4096, 0.005, bias=1.0, **learn)
    relu(net, "relu6" + s, fc6, **extra)
    add_layer(net, "drop6" + s, "Dropout", [fc6], [fc6], dropout_param=dict(dropout_ratio=0.5), **extra)
    fc(net, fc7, fc6, fc7_outputs, 0.005, bias=1.0, **learn)
    relu(net, "relu7" + s, fc7, **extra)
    add_layer(net, "drop7" + s, "Dropout", [fc7], [fc7], dropout_param=dict(dropout_ratio=0.5), **extra)
    fc(net, "fc8" + h, fc7, num_output, 0.01, lr_mult=head_lr_mult, **learn)
    return "fc8" + h, ["conv1", "conv2", "conv3", "conv4", "conv5"]


TOWERS = {"cifar_quick": cifar_quick_tower, "digits": digits_tower, "caffenet": caffenet_tower}
