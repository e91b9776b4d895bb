"""The noisy-label model: its math (caffe-free numpy), matrix C, synthetic noise, and the
`caffe.Layer` adapters (published as noisy_label.layers)."""
