"""Learning from massive noisy labeled data (Xiao et al., CVPR 2015) on stock BVLC Caffe.

The math lives in caffe-free numpy modules; `noisy_label.layers` holds the thin
`caffe.Layer` adapters that prototxt networks load with `type: "Python"`.
"""
