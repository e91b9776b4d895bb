"""Downloads that fail clearly offline and never leave a partial file under the final name."""
import os
import shutil
import urllib.request


def fetch(url, path, timeout=30):
    """Download url to path via `<path>.part`, renamed when complete. Raises OSError."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    part = path + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            shutil.copyfileobj(response, f)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    os.replace(part, path)
    return path
