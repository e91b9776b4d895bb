"""The noisy-label loss and posterior as pycaffe Python layers (docs/model.md#the-loss-layer).

    layer { name: "loss_noisy" type: "Python"
      bottom: "ip2_clean" bottom: "ip2_ntype" bottom: "label_noisy"
      top: "loss_noisy"       # optional, in order: top: "prob_y" top: "prob_z" top: "posterior"
      loss_weight: 1          # Python layers get no automatic loss weight (0 for further tops)
      param { lr_mult: 0 decay_mult: 0 }   # C is parameter blob 0: fixed, kept in snapshots
      python_param { module: "noisy_label.layers" layer: "SoftmaxWithNoisyLabelLoss"
        param_str: '{"matrix_c": "exp/db/cifar10/matrix_c.binaryproto", "update_noise_lr": 0.1}' } }

The math lives in `noisy_label.noisy_loss`; these classes parse, check and copy blobs.
"""
import math
import sys

import caffe
import numpy as np
import yaml

from noisy_label.core import noisy_loss, robust_losses
from noisy_label.core.matrix_c import load_matrix_c, load_matrix_q
from noisy_label.core.noisy_loss import NUM_NOISE_TYPES

PARAMS = ("matrix_c", "update_noise_lr")


class _Layer(caffe.Layer):
    """What every layer here shares: errors that name the layer."""

    def fail(self, problem):
        """A ValueError naming this layer (Python layers cannot see their own name) and the problem."""
        message = "%s layer (param_str %r): %s" % (type(self).__name__, self.param_str, problem)
        # The `caffe` tool aborts on a Python exception without printing it: say it here first.
        sys.stderr.write("%s\n" % message)
        return ValueError(message)


class _NoisyLabelLayer(_Layer):
    """What both layers share: param_str, C as parameter blob 0, checks of the bottoms."""

    max_tops = 1

    def setup(self, bottom, top):
        """Parse param_str; check blob counts; fill C (parameter blob 0) from its file when new."""
        try:
            params = yaml.safe_load(self.param_str)
        except yaml.YAMLError as e:
            raise self.fail("param_str is not a YAML/JSON mapping: %s" % e)
        if not isinstance(params, dict) or "matrix_c" not in params:
            raise self.fail('param_str must be a mapping with "matrix_c", e.g. '
                            '\'{"matrix_c": "matrix_c.binaryproto", "update_noise_lr": 0.1}\'')
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise self.fail("unknown param_str keys %s (known: %s)" % (unknown, ", ".join(PARAMS)))
        self.update_noise_lr = params.get("update_noise_lr", 1.0)
        try:
            self.update_noise_lr = float(self.update_noise_lr)
        except (TypeError, ValueError, OverflowError):
            raise self.fail("update_noise_lr must be a number, got %r" % (self.update_noise_lr,))
        if not (math.isfinite(self.update_noise_lr) and self.update_noise_lr >= 0):
            # It scales the noise-type net's gradient: negative climbs the loss, NaN poisons it.
            raise self.fail("update_noise_lr must be a finite number >= 0, got %r"
                            % (self.update_noise_lr,))
        if len(bottom) != 3:
            raise self.fail("wants 3 bottoms (clean logits, noise-type logits, noisy labels), got %d"
                            % len(bottom))
        if not 1 <= len(top) <= self.max_tops:
            raise self.fail("wants 1 to %d tops, got %d" % (self.max_tops, len(top)))
        num_classes = self.check_bottoms(bottom)
        # Setup runs before -weights/-snapshot copy parameters in: those then replace this C.
        if len(self.blobs) == 0:
            try:
                matrix_c = load_matrix_c(str(params["matrix_c"]), num_classes)
            except ValueError as e:
                raise self.fail(e)
            self.blobs.add_blob(1, 1, num_classes, num_classes)
            self.blobs[0].data[0, 0] = matrix_c

    def check_bottoms(self, bottom):
        """Raise unless the bottoms are M×N, M×3 and M labels with N = C's N; return N."""
        clean, ntype = bottom[0].data.shape, bottom[1].data.shape
        if len(clean) < 2 or np.prod(clean[2:]) != 1:
            raise self.fail("bottom 0 (clean logits) must be M x N, got shape %s" % (clean,))
        if len(ntype) < 2 or ntype[0] != clean[0] or np.prod(ntype[1:]) != NUM_NOISE_TYPES:
            raise self.fail("bottom 1 (noise-type logits) must be M x %d with M = %d, got shape %s"
                            % (NUM_NOISE_TYPES, clean[0], ntype))
        if bottom[2].count != clean[0]:
            raise self.fail("bottom 2 (noisy labels) must hold M = %d values, got shape %s"
                            % (clean[0], bottom[2].data.shape))
        if len(self.blobs) and self.blobs[0].data.shape != (1, 1, clean[1], clean[1]):
            raise self.fail("clean logits have N = %d classes but C (parameter blob 0) has shape %s"
                            % (clean[1], self.blobs[0].data.shape))
        return clean[1]

    def inputs(self, bottom):
        """Clean logits (M, N), noise-type logits (M, 3), labels (M,) int, C (N, N), checked."""
        matrix_c = self.blobs[0].data[0, 0]
        try:
            noisy_loss.check_matrix_c(matrix_c)
        except ValueError as e:  # C came from a snapshot or a solver changed it
            raise self.fail("parameter blob 0: %s (C must stay fixed: param { lr_mult: 0 "
                            "decay_mult: 0 })" % e)
        try:
            labels = noisy_loss.check_labels(bottom[2].data.ravel(), matrix_c.shape[0])
        except ValueError as e:
            raise self.fail("bottom 2: %s" % e)
        num = bottom[0].num
        return bottom[0].data.reshape(num, -1), bottom[1].data.reshape(num, -1), labels, matrix_c

    def no_label_gradient(self, propagate_down, bottom):
        """Labels get no gradient: a zero diff when Caffe asks for one.

        The original C++ layer declared AllowForceBackward false for the labels; a Python
        layer cannot, so `force_backward: true` nets (gradient checks, saliency) ask for it.
        """
        if propagate_down[2]:
            bottom[2].diff[...] = 0


class SoftmaxWithNoisyLabelLoss(_NoisyLabelLayer):
    """Loss of the noisy-label model; optional tops p(y|x), p(z|x) and the posterior q."""

    max_tops = 4

    def reshape(self, bottom, top):
        """Check the bottoms; tops: loss (1,), then (M, N), (M, 3), (M, N, 3, 1)."""
        num_classes = self.check_bottoms(bottom)
        num = bottom[0].num
        shapes = [(1,), (num, num_classes), (num, NUM_NOISE_TYPES),
                  (num, num_classes, NUM_NOISE_TYPES, 1)]
        for i in range(len(top)):
            top[i].reshape(*shapes[i])

    def forward(self, bottom, top):
        """Softmaxes, the posterior q (kept for backward) and the loss."""
        loss, self.prob_y, self.prob_z, self.q = noisy_loss.forward(*self.inputs(bottom))
        top[0].data[0] = loss
        outputs = [None, self.prob_y, self.prob_z, self.q]
        for i in range(1, len(top)):
            top[i].data[...] = outputs[i].reshape(top[i].data.shape)

    def backward(self, top, propagate_down, bottom):
        """EM gradients with q fixed, times the loss weight top[0].diff; none to labels or C."""
        self.no_label_gradient(propagate_down, bottom)
        d_clean, d_ntype = noisy_loss.gradients(self.prob_y, self.prob_z, self.q,
                                                top[0].diff[0], self.update_noise_lr)
        if propagate_down[0]:
            bottom[0].diff[...] = d_clean.reshape(bottom[0].diff.shape)
        if propagate_down[1]:
            bottom[1].diff[...] = d_ntype.reshape(bottom[1].diff.shape)


class NoisyLabelPosterior(_NoisyLabelLayer):
    """Posterior q(y, z | ỹ, x) and optionally p(y|ỹ,x) = Σ_z q, for inference and relabelling."""

    max_tops = 2

    def reshape(self, bottom, top):
        """Check the bottoms; tops: q (M, N, 3, 1), then p(y|ỹ,x) (M, N)."""
        num_classes = self.check_bottoms(bottom)
        shapes = [(bottom[0].num, num_classes, NUM_NOISE_TYPES, 1), (bottom[0].num, num_classes)]
        for i in range(len(top)):
            top[i].reshape(*shapes[i])

    def forward(self, bottom, top):
        """q = u / S from the softmaxes, the labels and C."""
        logits_clean, logits_ntype, labels, matrix_c = self.inputs(bottom)
        u = noisy_loss.joint(noisy_loss.softmax(logits_clean), noisy_loss.softmax(logits_ntype),
                             labels, matrix_c)
        q, _ = noisy_loss.posterior(u)
        top[0].data[...] = q.reshape(top[0].data.shape)
        if len(top) > 1:
            top[1].data[...] = np.einsum("iyz->iy", q)

    def backward(self, top, propagate_down, bottom):
        """No gradient: zero for the logits and the labels."""
        self.no_label_gradient(propagate_down, bottom)
        for i in range(2):
            if propagate_down[i]:
                bottom[i].diff[...] = 0


# ---- the other noise-robust losses (noisy_label.core.robust_losses) -------------------------


class _RobustLoss(_Layer):
    """Bottoms: logits (M, N), noisy labels (M,); top: the loss. param_str: a YAML mapping of
    `params`. Labels get no gradient; -1 labels are ignored."""

    params = ()
    required = ()

    def setup(self, bottom, top):
        """Parse param_str; check the bottoms and tops; `configure` the loss."""
        try:
            params = yaml.safe_load(self.param_str or "{}")
        except yaml.YAMLError as e:
            raise self.fail("param_str is not a YAML/JSON mapping: %s" % e)
        if not isinstance(params, dict):
            raise self.fail("param_str must be a mapping with keys %s" % ", ".join(self.params))
        unknown = sorted(set(params) - set(self.params))
        missing = [k for k in self.required if k not in params]
        if unknown or missing:
            raise self.fail("unknown param_str keys %s / missing %s (keys: %s)"
                            % (unknown, missing, ", ".join(self.params)))
        if len(bottom) != 2 or len(top) != 1:
            raise self.fail("wants 2 bottoms (logits, noisy labels) and 1 top, got %d and %d"
                            % (len(bottom), len(top)))
        try:
            self.configure(params, bottom[0].data.reshape(bottom[0].num, -1).shape[1])
        except ValueError as e:
            raise self.fail(e)

    def reshape(self, bottom, top):
        """Check the bottoms; top: the loss (1,)."""
        if bottom[1].count != bottom[0].num:
            raise self.fail("bottom 1 (noisy labels) must hold M = %d values, got shape %s"
                            % (bottom[0].num, bottom[1].data.shape))
        top[0].reshape(1)

    def forward(self, bottom, top):
        """The loss; its gradient kept for backward."""
        logits = bottom[0].data.reshape(bottom[0].num, -1)
        try:
            labels = noisy_loss.check_labels(bottom[1].data.ravel(), logits.shape[1])
        except ValueError as e:
            raise self.fail("bottom 1: %s" % e)
        top[0].data[0], self.d_logits = self.loss(logits, labels)

    def backward(self, top, propagate_down, bottom):
        """The loss gradient times the loss weight top[0].diff; none to the labels."""
        if propagate_down[1]:
            bottom[1].diff[...] = 0
        if propagate_down[0]:
            bottom[0].diff[...] = (self.d_logits * top[0].diff[0]).reshape(bottom[0].diff.shape)


class ForwardCorrectedSoftmaxLoss(_RobustLoss):
    """Forward correction (Patrini et al., CVPR 2017): -log Σ_y Q[ỹ, y] p(y|x)."""

    params = required = ("matrix_q",)

    def configure(self, params, num_classes):
        self.matrix_q = load_matrix_q(str(params["matrix_q"]), num_classes).astype(np.float64)

    def loss(self, logits, labels):
        return robust_losses.forward_corrected(logits, labels, self.matrix_q)


class BackwardCorrectedSoftmaxLoss(_RobustLoss):
    """Backward correction (Patrini et al., CVPR 2017): Σ_y (Qᵀ)⁻¹[ỹ, y] (-log p(y|x))."""

    params = required = ("matrix_q",)

    def configure(self, params, num_classes):
        matrix_q = load_matrix_q(str(params["matrix_q"]), num_classes)
        self.inverse = robust_losses.backward_matrix(matrix_q)

    def loss(self, logits, labels):
        return robust_losses.backward_corrected(logits, labels, self.inverse)


class BootstrappingSoftmaxLoss(_RobustLoss):
    """Bootstrapping (Reed et al., 2015): -Σ_y [β 1(y = ỹ) + (1 - β) b(y)] log p(y|x), b = p
    (soft) or the one-hot of argmax p (hard)."""

    params = ("beta", "mode")

    def configure(self, params, num_classes):
        self.beta, self.mode = robust_losses.check_bootstrap(params.get("beta", 0.95),
                                                             params.get("mode", "soft"))

    def loss(self, logits, labels):
        return robust_losses.bootstrapping(logits, labels, self.beta, self.mode)
