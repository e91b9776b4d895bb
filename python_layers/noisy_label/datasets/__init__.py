"""The datasets, registered by name (`get_dataset("cifar10")`), and `make lmdb`'s `build`.

A built-in dataset is one module in this package holding a Dataset subclass decorated with
`@register`: every module here is imported, so it registers itself. A user's dataset is a
folder with a dataset.yaml, which `find(name)` loads and registers (datasets.folder)."""
import importlib
import pkgutil

from noisy_label.datasets.base import (
    NOT_TRAINED_ON,
    Dataset,
    Option,
    Output,
    Prepared,
    add,
    build,
    builtin_names,
    check_build,
    get_dataset,
    names,
    on_register,
    read_key_list,
    read_label_kv,
    register,
    unregister,
    write_outputs,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module("%s.%s" % (__name__, _module))

from noisy_label.datasets.folder import find  # noqa: E402

__all__ = ["NOT_TRAINED_ON", "Dataset", "Option", "Output", "Prepared", "add", "build",
           "builtin_names", "check_build", "find", "get_dataset", "names", "on_register",
           "read_key_list", "read_label_kv", "register", "unregister", "write_outputs"]
