"""Shared fixtures: small generated data (helpers for the tests live in tests/helpers.py)."""
import pytest


@pytest.fixture(scope="session")
def digits_lmdbs(tmp_path_factory):
    """train/test LMDBs of scikit-learn's digits, written once per session."""
    from noisy_label import smoke
    return smoke.write_digits_lmdbs(str(tmp_path_factory.mktemp("digits_lmdb")))
