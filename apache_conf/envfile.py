"""The production env file that ``apache_conf install`` writes and settings.py reads.

Lines the install owns are set; every other line (comments, the operator's own settings)
is kept as it was. Values never hold quotes, spaces or ``#``: python-dotenv reads them
back verbatim.
"""

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

#: Always in ALLOWED_HOSTS: local probes (curl http://127.0.0.1/healthz, monitoring) must
#: not get a 400 and a DisallowedHost traceback in the error log.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
SAFE_VALUE_RE = re.compile(r"^[A-Za-z0-9_.,:/@%+=\[\]~-]*$")
LINE_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
#: Settings of the three ways to serve HTTPS (see docs/production.md "TLS").
HTTPS_MODES = {
    "tls": {"DJANGO_HTTPS": "1", "DJANGO_BEHIND_TLS_PROXY": "0"},
    "proxy": {"DJANGO_HTTPS": "1", "DJANGO_BEHIND_TLS_PROXY": "1"},
    "http": {"DJANGO_HTTPS": "0", "DJANGO_BEHIND_TLS_PROXY": "0"},
}
HEADER = """\
# Production settings of the Django site, read by settings.py (DJANGO_ENV_FILE).
# Written by `apache_conf install`; it updates only the lines it owns and keeps the rest.
# Secrets: root-owned, readable by the daemons' group only (mode 0640).
"""


class EnvFileError(Exception):
    """A value the env file cannot hold; ``str()`` is one line."""


def read(path):
    """{key: value} of an existing file ({} if there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def merge_hosts(existing, server_name):
    """ALLOWED_HOSTS: the server name, the operator's hosts, the loopback names; no repeats."""
    hosts = [server_name, *(h.strip() for h in (existing or "").split(",")), *LOOPBACK_HOSTS]
    return ",".join(dict.fromkeys(h for h in hosts if h))


@dataclass(frozen=True)
class Wanted:
    """What the install needs in the file."""

    database_url: str
    server_name: str
    https: str  # a key of HTTPS_MODES
    persistent_mode: str
    var_dir: Path

    def values(self, current):
        """The lines to set, given the file's ``current`` values."""
        values = {
            "DJANGO_SECRET_KEY": current.get("DJANGO_SECRET_KEY") or secrets.token_hex(40),
            "DATABASE_URL": self.database_url,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": merge_hosts(
                current.get("DJANGO_ALLOWED_HOSTS"), self.server_name
            ),
            **HTTPS_MODES[self.https],
            "DJANGO_VAR_DIR": str(self.var_dir),
            "PERSISTENT_MODE": self.persistent_mode,
        }
        for key, value in values.items():
            if not SAFE_VALUE_RE.match(value):
                raise EnvFileError(
                    f"{key} holds a character the env file cannot carry verbatim "
                    "(space, quote, '#', '$' or '\\'): percent-encode it in the URL"
                )
        return values


def render(text, values):
    """``text`` (the file's current content, or '') with ``values`` set in place."""
    lines = text.splitlines() if text else HEADER.splitlines()
    pending = dict(values)
    result = []
    for line in lines:
        match = LINE_RE.match(line)
        if match and match.group(1) in values:
            key = match.group(1)
            if key in pending:
                result.append(f"{key}={pending.pop(key)}")
            continue  # a repeated line for a key we set: drop it
        result.append(line)
    result.extend(f"{key}={value}" for key, value in pending.items())
    return "\n".join(result) + "\n"


def masked(text):
    """``text`` with the secret key and the database password hidden (for --dry-run)."""
    text = re.sub(r"^(DJANGO_SECRET_KEY=).*$", r"\1********", text, flags=re.M)
    return re.sub(r"^(DATABASE_URL=[^:/]*://[^:@/]*:)[^@]*@", r"\1********@", text, flags=re.M)
