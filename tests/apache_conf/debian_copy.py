"""A throwaway copy of Debian's /etc/apache2 for install tests, and an HTTP client for it.

The copy gets its own run, lock and log directories (envvars) and free ports (ports.conf),
so the machine's own Apache and its files are never touched. ``snapshot()`` records every
file, link and mode under it, for "uninstall leaves it byte-identical".
"""

import http.client
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from apache_conf.apachectl import free_port
from apache_conf.debian import ServerRoot

SYSTEM_ROOT = Path("/etc/apache2")


class DebianCopy:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="apache-install-"))
        self.base.chmod(0o755)
        self.root = self.base / "apache2"
        self.port = free_port()
        self.tls_port = free_port()
        shutil.copytree(SYSTEM_ROOT, self.root, symlinks=True)
        for name in ("run", "lock", "log", "state", "var", "site-logs"):
            (self.base / name).mkdir(mode=0o755)
        self.acme_webroot = self.base / "acme"
        challenges = self.acme_webroot / ".well-known" / "acme-challenge"
        challenges.mkdir(parents=True)
        for path in (challenges, *challenges.parents):
            if path == self.base:
                break
            path.chmod(0o755)
        (challenges / "token-1").write_text("token-1.key\n")
        (challenges / "token-1").chmod(0o644)
        envvars = self.root / "envvars"
        envvars.write_text(
            envvars.read_text()
            + "\n# throwaway copy (tests/apache_conf/debian_copy.py)\n"
            + f"export APACHE_PID_FILE={self.base}/run/apache2.pid\n"
            + f"export APACHE_RUN_DIR={self.base}/run\n"
            + f"export APACHE_LOCK_DIR={self.base}/lock\n"
            + f"export APACHE_LOG_DIR={self.base}/log\n"
        )
        ports = self.root / "ports.conf"
        text = re.sub(
            r"^Listen 80$", f"Listen 127.0.0.1:{self.port}", ports.read_text(), flags=re.M
        )
        text = re.sub(
            r"^(\s*)Listen 443$", rf"\1Listen 127.0.0.1:{self.tls_port}", text, flags=re.M
        )
        ports.write_text(text)
        self.server = ServerRoot(self.root)

    # Path properties, alike in shape to render.Site's but of this copy's tree: nothing to share.
    @property
    def state_dir(self):
        return self.base / "state"

    @property
    def var_dir(self):
        return self.base / "var"

    @property
    def log_dir(self):
        return self.base / "site-logs"

    def snapshot(self):
        """{relative path: (kind, mode, content or link target)} of the whole copy."""
        found = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                rel = str(path.relative_to(self.root))
                st = path.lstat()
                if path.is_symlink():
                    found[rel] = ("link", 0, os.readlink(path))
                elif path.is_dir():
                    found[rel] = ("dir", st.st_mode & 0o7777, None)
                else:
                    found[rel] = (
                        "file",
                        st.st_mode & 0o7777,
                        path.read_bytes(),
                        st.st_uid,
                        st.st_gid,
                    )
        return found

    def enable(self, kind, name, text):
        """Write ``KIND-available/NAME`` and link it from ``KIND-enabled`` (as a2enmod does)."""
        (self.root / f"{kind}-available" / name).write_text(text)
        (self.root / f"{kind}-enabled" / name).symlink_to(f"../{kind}-available/{name}")

    def self_signed(self, name):
        cert, key = self.base / "cert.pem", self.base / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key

    def error_log(self):
        path = self.base / "log" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self):
        paths = [p for d in ("log", "site-logs") for p in sorted((self.base / d).glob("*"))]
        return "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')[-4000:]}" for p in paths)

    def daemons(self, name):
        """pids of the ``(wsgi:NAME)`` daemons whose parent is this copy's Apache."""
        parent = self.server.running_pid()
        out = subprocess.run(
            ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True
        ).stdout
        found = []
        for line in out.splitlines():
            pid, ppid, args = line.split(None, 2)
            if int(ppid) == parent and args.split()[0] == f"(wsgi:{name})":
                found.append(int(pid))
        return found

    def destroy(self):
        pid = self.server.running_pid()
        if pid is not None:
            self.server.ctl("stop")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)


class Client:
    """HTTP(S) to 127.0.0.1 with a Host header and a cookie jar (like a browser at ``host``)."""

    def __init__(self, scheme, port, host, headers=None):
        self.scheme, self.port, self.host = scheme, port, host
        self.headers = dict(headers or {})
        self.cookies = {}

    @property
    def origin(self):
        """The browser's origin: https behind a TLS proxy (X-Forwarded-Proto: https)."""
        proxied = self.headers.get("X-Forwarded-Proto") == "https"
        return f"{'https' if proxied else self.scheme}://{self.host}:{self.port}"

    def request(self, method, path, form=None, headers=None):
        if self.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Host": f"{self.host}:{self.port}", **self.headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Referer"] = self.origin + path
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        for header in resp.headers.get_all("Set-Cookie") or ():
            cookie = SimpleCookie(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        return resp.status, text, resp.headers

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def login(self, username, password, next_path):
        login = f"/admin/login/?next={next_path}"
        status, body, _ = self.get(login)
        assert status == 200, (status, body[:300])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
        form = {"csrfmiddlewaretoken": token, "username": username, "password": password,
                "next": next_path}  # fmt: skip
        status, body, headers = self.request("POST", login, form=form)
        assert status == 302, (status, body[:500])
        return headers["Location"]
