"""Number formats shared with dashboard.js (same rules, so a refresh never reflows), and
``inline_static``: the page carries its own script and style, whatever serves /static/."""

from functools import cache

from django import template
from django.contrib.staticfiles import finders
from django.utils.safestring import mark_safe

register = template.Library()

DASH = "\u2013"


def seconds(value):
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


FORMATS = {
    "int": lambda v: f"{int(v):,}",
    "rate": lambda v: f"{v:,.1f}",
    "pct": lambda v: f"{v * 100:.0f}%",
    "cpu": lambda v: f"{v:.0f}%",
    "bytes": lambda v: f"{v / 1048576:,.1f} MiB",
    "ms": lambda v: f"{v * 1000:,.1f} ms",
    "secs": seconds,
    "ratio": lambda v: f"{v:,.1f}",
}


@register.filter
def dfmt(value, kind):
    """Format a figure like dashboard.js's fmt(value, kind); a dash for unknown."""
    if value is None or value == "":
        return DASH
    return FORMATS[kind](value)


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)


@cache
def _read_static(path):
    found = finders.find(path)
    if found is None:
        raise template.TemplateSyntaxError(f"inline_static: no static file {path!r}")
    with open(found, encoding="utf-8") as fh:
        return fh.read()


@register.simple_tag
def inline_static(path):
    """The text of a static file of this project (read once per process)."""
    return mark_safe(_read_static(path))
