"""bench.tune's URL mix (paths, access logs) and its progress bar."""

import io

import pytest

from bench.tune import mix
from bench.tune.progress import ProgressBar

LOG = """\
127.0.0.1 - - [29/Nov/2026:20:00:00 +0000] "GET /items/7/ HTTP/1.1" 200 512 "-" "curl/8"
127.0.0.1 - - [29/Nov/2026:20:00:01 +0000] "POST /admin/login/ HTTP/1.1" 302 0 "-" "x"
10.0.0.2 - bob [29/Nov/2026:20:00:02 +0000] "GET /?page=2 HTTP/1.0" 200 900
# a comment
/nodb/
"""


def test_paths_come_from_an_access_log_or_a_list(tmp_path):
    path = tmp_path / "access.log"
    path.write_text(LOG)
    assert mix.read_paths(path) == ["/items/7/", "/?page=2", "/nodb/"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("items/1/\n", "is not a path"),
        ("/a b\n", "is not a path"),
        ("/\x1b[31m\n", "is not a path"),
        ("\n# nothing\n", "no paths"),
    ],
)
def test_bad_files_are_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "urls.txt"
    path.write_text(text)
    with pytest.raises(mix.MixError, match=message):
        mix.read_paths(path)


def test_the_demo_mix_and_operator_urls():
    paths = mix.demo_paths(range(1, 101))
    assert paths.count("/") == mix.DEMO_ITEMS // mix.ITEMS_PER_HOME
    assert len([p for p in paths if p.startswith("/items/")]) == mix.DEMO_ITEMS
    assert mix.operator_paths() is None
    assert mix.operator_paths(["/x/"]) == ["/x/"]
    with pytest.raises(mix.MixError, match="--url"):
        mix.operator_paths(["http://evil/"])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_shows_runs_shape_and_time_left():
    plain = io.StringIO()
    bar = ProgressBar(4, run_estimate=10, stream=plain)
    bar.begin("coarse, round 1/1, 2x1")
    assert "0/4" in plain.getvalue() and "~0:40 left | coarse, round 1/1, 2x1" in plain.getvalue()
    bar.finish("800 req/s")
    assert "  coarse, round 1/1, 2x1: 800 req/s\n" in plain.getvalue()
    assert bar.line().startswith("[######------------------] 1/4")
    tty = Terminal()
    bar = ProgressBar(2, run_estimate=5, stream=tty)
    bar.begin("refine 1, round 1/3, 3x1")
    bar.finish("done")
    bar.close()
    assert tty.getvalue().startswith("\r\x1b[K[") and tty.getvalue().endswith("\r\x1b[K")
