"""The Python layers that prototxt networks name (`python_param { module: "noisy_label.layers"
layer: "SoftmaxWithNoisyLabelLoss" }`): a stable public name for noisy_label.core.layers."""
from noisy_label.core.layers import (  # noqa: F401
    BackwardCorrectedSoftmaxLoss,
    BootstrappingSoftmaxLoss,
    ForwardCorrectedSoftmaxLoss,
    NoisyLabelPosterior,
    SoftmaxWithNoisyLabelLoss,
)
