"""Shared fixtures: small generated data (helpers for the tests live in tests/helpers.py)."""
import os

import pytest

# The test-only Python layers (example_layers.py) load in every Caffe the tests start.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def digits_lmdbs(tmp_path_factory):
    """train/test LMDBs of scikit-learn's digits, written once per session."""
    import smoke
    return smoke.write_digits_lmdbs(str(tmp_path_factory.mktemp("digits_lmdb")))
