"""The datasets, one module each, registered by name (`get_dataset("cifar10")`), and `make
lmdb`'s `build`. Adding a dataset is one module with a registered Dataset subclass."""
from noisy_label.datasets import cifar10, clothing1M, digits  # noqa: F401  (they register)
from noisy_label.datasets.base import (  # noqa: F401
                                       Dataset,
                                       Output,
                                       build,
                                       get_dataset,
                                       names,
                                       read_key_list,
                                       read_label_kv,
                                       register,
                                       unregister,
                                       write_outputs,
)

__all__ = ["Dataset", "Output", "build", "get_dataset", "names", "read_key_list", "read_label_kv",
           "register", "unregister", "write_outputs", "cifar10", "clothing1M", "digits"]
