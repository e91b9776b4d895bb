"""Shared fixtures: small generated data (helpers for the tests live in tests/helpers.py)."""
import os

import pytest

# cuDNN 8+ may compute float32 convolutions in TF32 on Ampere and newer; the GPU tests compare
# with CPU mode in float32. CUDA reads this when libcaffe first touches the GPU, so it is set
# here, before any test module imports caffe; the processes the tests start inherit it.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

# The test-only Python layers (example_layers.py) load in every Caffe the tests start.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def digits_lmdbs(tmp_path_factory):
    """train/test LMDBs of scikit-learn's digits, written once per session."""
    import smoke
    return smoke.write_digits_lmdbs(str(tmp_path_factory.mktemp("digits_lmdb")))
