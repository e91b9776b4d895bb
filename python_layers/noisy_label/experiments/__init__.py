"""The experiments: nets and solvers (prototxt), the stage pipeline with the stock caffe tool,
logs, reports and net surgery."""
