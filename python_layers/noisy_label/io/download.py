"""Downloads that fail clearly offline and never leave a partial file under the final name."""
import shutil
import urllib.request

from noisy_label.io import atomic


def fetch(url: str, path: str, timeout: float = 30) -> str:
    """Download url to path via a temporary name, renamed when complete. Raises OSError."""
    with atomic.atomic_path(path) as part:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            shutil.copyfileobj(response, f)
    return path
