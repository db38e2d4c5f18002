"""``inline_static``: the page carries its own script and style (with the response's CSP
nonce), whatever serves /static/. Numbers are formatted by dashboard.js only."""

from functools import cache

from django import template
from django.contrib.staticfiles import finders
from django.utils.safestring import mark_safe

register = template.Library()


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
