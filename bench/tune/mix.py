"""The URL mix the tuner loads the site with: the demo pages, or the operator's own.

``--url PATH`` (repeatable) and ``--urls FILE`` take paths; a FILE may be a plain list (one
path a line) or an Apache/nginx access log (common or combined format), from which the
GET requests' paths are taken in order. Everything read is checked: a path must start
with ``/`` and hold printable ASCII without spaces, and the mix is capped in size.
"""

import re
from pathlib import Path

MAX_PATHS = 10_000
MAX_PATH_LENGTH = 2000
PATH_RE = re.compile(r"^/[\x21-\x7e]*$")
LOG_RE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+"')
#: The default mix: four item pages for every home page, over DEMO_ITEMS distinct items.
DEMO_ITEMS = 40
ITEMS_PER_HOME = 4


class MixError(ValueError):
    """A URL or a file the mix cannot use; ``str()`` is one line."""


def check_path(path, where="--url"):
    """MixError unless ``path`` is a plain absolute URL path (``where`` names the source)."""
    if len(path) > MAX_PATH_LENGTH or not PATH_RE.match(path):
        shown = path[:60] + ("..." if len(path) > 60 else "")
        raise MixError(
            f"{where}: {shown!r} is not a path (it must start with '/', "
            f"printable ASCII, no spaces, at most {MAX_PATH_LENGTH} characters)"
        )
    return path


def read_paths(file):
    """Paths from a list or an access log (GET requests only), in file order."""
    path = Path(file)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise MixError(f"--urls {file}: cannot read it ({exc.strerror or exc})") from None
    paths = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = LOG_RE.search(line)
        if match:
            if match["method"] != "GET":
                continue
            line = match["path"]
        paths.append(check_path(line, f"--urls {file} line {number}"))
        if len(paths) > MAX_PATHS:
            raise MixError(f"--urls {file}: more than {MAX_PATHS} paths; take a sample")
    if not paths:
        raise MixError(f"--urls {file}: no paths (one per line, or GET lines of an access log)")
    return paths


def demo_paths(item_ids):
    """The demo pages: the home page and item pages, ITEMS_PER_HOME of them per home."""
    ids = list(item_ids)[:DEMO_ITEMS]
    if not ids:
        raise MixError("the demo catalog has no items")
    paths = []
    for n, item_id in enumerate(ids):
        if n % ITEMS_PER_HOME == 0:
            paths.append("/")
        paths.append(f"/items/{item_id}/")
    return paths


def operator_paths(urls=(), urls_file=None):
    """The operator's mix, or None for the demo pages."""
    paths = [check_path(url) for url in urls or ()]
    if urls_file:
        paths += read_paths(urls_file)
    return paths or None


def write_mix(paths, out):
    """The paths, one a line, for wrk's script; returns the file."""
    out = Path(out)
    out.write_text("".join(f"{path}\n" for path in paths))
    return out
