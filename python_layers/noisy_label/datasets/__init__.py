"""The datasets, one module each, registered by name (`get_dataset("cifar10")`), and `make
lmdb`'s `build`. Adding a dataset is one module in this package holding a Dataset subclass
decorated with `@register`: every module here is imported, so it registers itself."""
import importlib
import pkgutil

from noisy_label.datasets.base import (
    NOT_TRAINED_ON,
    Dataset,
    Output,
    build,
    check_build,
    get_dataset,
    names,
    read_key_list,
    read_label_kv,
    register,
    unregister,
    write_outputs,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module("%s.%s" % (__name__, _module))

__all__ = ["NOT_TRAINED_ON", "Dataset", "Output", "build", "check_build", "get_dataset", "names",
           "read_key_list", "read_label_kv", "register", "unregister", "write_outputs"]
