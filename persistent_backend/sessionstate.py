"""Does a statement leave state on its session? Read from the SQL text alone, conservatively.

A unit of work (a request) that ran such a statement is *pinned* (see ``pinning.py``): its
connection is never swapped for another one under its feet, and it is reset (``DISCARD
ALL``) or dropped before the next unit of work gets it.

The text is first scanned the way PostgreSQL's lexer reads it: string literals (``'...'``,
``E'...'``, dollar quotes), quoted identifiers and comments (``--``, and ``/* */`` that
nest) are blanked, so ``'SET'`` inside a string is no statement. Then:

* commands that set session state pin: ``SET``/``RESET`` (``SET LOCAL``,
  ``SET TRANSACTION`` and ``SET CONSTRAINTS`` only outside a transaction, where they would
  be the session's), ``DISCARD``, ``PREPARE``, ``DECLARE``, ``LOCK`` outside a
  transaction, ``CREATE TEMP ...``, ``SELECT ... INTO TEMP``, anything naming ``pg_temp``;
* functions that set session state pin, wherever they appear: session-level advisory
  locks, ``set_config()``, ``setseed()``, ``dblink_connect()``;
* what ``DISCARD ALL`` cannot undo pins *and* drops the connection at the end: ``LISTEN``
  (notifications already queued in the driver), ``LOAD``, ``dblink_connect()``;
* what cannot be classified pins and drops: several statements in one string, nested
  comments, unterminated quotes, ``DO``/``CALL`` blocks and any command not listed in
  ``_NO_STATE``.

Not detected (use ``persistent_backend.pin()``): state set inside a user-defined function
or by a raw driver cursor. ``nextval()`` is not pinned: ``currval()``/``lastval()`` on a
new session fail loudly instead of answering wrongly.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Effect:
    """``reason``: why the statement pins its session (None: it does not). ``drop``:
    ``DISCARD ALL`` cannot undo it, so the connection is closed at the end."""

    reason: str | None = None
    drop: bool = False


NONE = Effect()
# First keywords of commands that leave nothing on the session once they are done.
_NO_STATE = frozenset(
    """select insert update delete merge with values table show explain copy truncate
    create alter drop grant revoke comment analyze analyse vacuum refresh cluster reindex
    notify unlisten close fetch move checkpoint import security execute deallocate begin
    start commit end rollback abort savepoint release""".split()
)
_COMMANDS = {
    "reset": Effect("reset"),
    "discard": Effect("discard"),
    "prepare": Effect("prepare"),
    "declare": Effect("declare"),
    "listen": Effect("listen", drop=True),
    "load": Effect("load", drop=True),
    "do": Effect("unclassified", drop=True),
    "call": Effect("unclassified", drop=True),
}
_TRANSACTION_SCOPED_SET = re.compile(r"set\s+(local|transaction|constraints)\b")
_FUNCTIONS = [
    (re.compile(r"\bdblink_connect(_u)?\s*\("), Effect("dblink", drop=True)),
    (re.compile(r"\bpg_(try_)?advisory_lock(_shared)?\s*\("), Effect("advisory_lock")),
    (re.compile(r"\bset_config\s*\("), Effect("set_config")),
    (re.compile(r"\bsetseed\s*\("), Effect("setseed")),
]
_TEMP = re.compile(
    r"^create\s+(or\s+replace\s+)?((global|local)\s+)?(temp|temporary)\b"
    r"|\binto\s+(temp|temporary)\b|\bpg_temp\b"
)
_FIRST_WORD = re.compile(r"[\s(]*([a-z_]+)")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$")
_CACHE_SIZE = 2048
_cache = {}
# The hot path's lookup, ``cached((sql, in_transaction))``: an Effect, or None when
# ``classify()`` has not seen the text yet (it fills the cache). No call of its own.
cached = _cache.get


def scan(sql):
    """``(text, problem)``: ``sql`` lowercased with literals, quoted identifiers and
    comments blanked; ``problem`` names what makes it unclassifiable ("multiple
    statements", "nested comment", "unterminated") or is None."""
    out = []
    i, n = 0, len(sql)
    ended = False  # a ';' was seen: anything but blanks after it is a second statement
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            out.append(" ")
            continue
        if c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    return "", "nested comment"
                if sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    j += 1
            if depth:
                return "", "unterminated"
            i = j
            out.append(" ")
            continue
        if ended and not c.isspace():
            return "", "multiple statements"
        if c == "'":
            backslashes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _word(sql[i - 2]))
            j = _end_of_string(sql, i + 1, backslashes)
            if j < 0:
                return "", "unterminated"
            out.append("''")
            i = j
            continue
        if c == '"':
            j = i + 1
            while True:
                j = sql.find('"', j)
                if j < 0:
                    return "", "unterminated"
                if sql.startswith('""', j):
                    j += 2
                    continue
                break
            out.append(re.sub(r"\W", "_", sql[i + 1 : j]))
            i = j + 1
            continue
        if c == "$" and (i == 0 or not _word(sql[i - 1])):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                tag = match.group(0)
                j = sql.find(tag, match.end())
                if j < 0:
                    return "", "unterminated"
                out.append("''")
                i = j + len(tag)
                continue
        if c == ";":
            ended = True
            out.append(" ")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out).lower(), None


def _word(ch):
    return ch.isalnum() or ch == "_"


def _end_of_string(sql, j, backslashes):
    """Index just past the closing quote of a string literal starting at ``j``, or -1."""
    n = len(sql)
    while j < n:
        c = sql[j]
        if backslashes and c == "\\":
            j += 2
            continue
        if c == "'":
            if sql.startswith("''", j):
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def classify(sql, in_transaction):
    """The ``Effect`` of running ``sql`` (a str) on a session; cached per text."""
    key = (sql, in_transaction)
    effect = _cache.get(key)
    if effect is None:
        effect = _classify(sql, in_transaction)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = effect
    return effect


def _classify(sql, in_transaction):
    text, problem = scan(sql)
    if problem:
        return Effect(f"unclassified: {problem}", drop=True)
    match = _FIRST_WORD.match(text)
    if not match:
        return NONE  # empty, or only comments
    first = match.group(1)
    rest = text[match.start(1) :]
    if first == "set":
        if in_transaction and _TRANSACTION_SCOPED_SET.match(rest):
            return NONE
        return Effect("set")
    if first == "lock":
        return NONE if in_transaction else Effect("lock")
    if first in _COMMANDS:
        return _COMMANDS[first]
    if first not in _NO_STATE:
        return Effect(f"unclassified: {first.upper()}", drop=True)
    for pattern, effect in _FUNCTIONS:
        if pattern.search(text):
            return effect
    if _TEMP.search(rest):
        return Effect("temporary")
    return NONE


def text_of(sql, raw):
    """``sql`` as text: str, bytes, or a driver's composed SQL object (None if unknown)."""
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes):
        return sql.decode(errors="replace")
    try:
        return sql.as_string(raw)
    except Exception:
        return None
