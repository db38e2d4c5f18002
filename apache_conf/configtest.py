"""``apache2ctl -t`` for written configs: alone in a throwaway httpd.conf, then inside the
system's own config when there is one (``--check``)."""

import tempfile
from pathlib import Path

from apache_conf import debian
from apache_conf.apachectl import StandaloneApache


def check(paths, out, err, server_root=None, venv=None):
    """``apache2ctl -t`` on each config: alone, in a throwaway httpd.conf; then inside the
    system's config (``server_root``, default /etc/apache2, when there is one), which
    catches conflicts with what is already there (e.g. a daemon name in use)."""
    root = debian.ServerRoot(Path(server_root or debian.SYSTEM_ROOT))
    system = (root.path / "apache2.conf").is_file()
    failed = 0
    for path in paths:
        if path.suffix != ".conf":
            continue
        with tempfile.TemporaryDirectory(prefix="apache-conf-check-") as tmp:
            results = [("", StandaloneApache(tmp, path, venv=venv).config_test())]
        if system:
            results.append((f" with {root.path}", root.config_test_with(path, venv)))
        for where, result in results:
            if result.returncode == 0:
                out.write(f"apache2ctl -t {path.name}{where}: Syntax OK\n")
            else:
                failed += 1
                err.write(
                    f"apache2ctl -t {path.name}{where} failed:\n{result.stdout}{result.stderr}\n"
                )
    return 1 if failed else 0
