"""A minimal Python layer with a learnable parameter, in the spirit of BVLC's pyloss.py.

Used by the smoke demo and the tests to show that a Python layer's parameter
blob is trained by the solver, saved in snapshots and restored on resume.
"""
import caffe


class Scale(caffe.Layer):
    """top = bottom * w, with one learnable multiplier per channel (axis 1), w starting at 1."""

    def setup(self, bottom, top):
        """Check there is one bottom; create the parameter blob (C,)."""
        if len(bottom) != 1 or len(top) != 1:
            raise ValueError("Scale layer %r wants one bottom and one top" % self.param_str)
        if len(self.blobs) == 0:
            self.blobs.add_blob(bottom[0].channels)
            self.blobs[0].data[...] = 1.0

    def reshape(self, bottom, top):
        """Top has the bottom's shape."""
        top[0].reshape(*bottom[0].data.shape)

    def _w(self, bottom):
        return self.blobs[0].data.reshape((1, -1) + (1,) * (bottom[0].data.ndim - 2))

    def forward(self, bottom, top):
        """Multiply each channel by its weight."""
        top[0].data[...] = bottom[0].data * self._w(bottom)

    def backward(self, top, propagate_down, bottom):
        """Accumulate dL/dw; pass dL/dx = dL/dy * w."""
        axes = tuple(i for i in range(bottom[0].data.ndim) if i != 1)
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self._w(bottom)
