"""django-debug-toolbar panel: the connection this request used, and the process's store."""

from debug_toolbar.panels import Panel
from django.db import connections
from django.utils.translation import gettext_lazy as _

from persistent_backend.base import DatabaseWrapper
from persistent_backend.stats import current_connection_info, stats


class PersistentConnectionPanel(Panel):
    """Add ``"persistent_backend.panels.PersistentConnectionPanel"`` to DEBUG_TOOLBAR_PANELS."""

    title = _("Persistent connections")
    template = "persistent_backend/panel.html"

    @property
    def nav_subtitle(self):
        rows = self.get_stats().get("databases", [])
        used = [row for row in rows if row["info"]]
        if not used:
            return _("no query")
        info = used[0]["info"]
        state = _("reused") if info["reused"] else _("new")
        return f"{state} · backend {info['backend_pid']} · {info['uses']} uses"

    def generate_stats(self, request, response):
        process = stats()
        rows = []
        for alias in connections:
            if not isinstance(connections[alias], DatabaseWrapper):
                continue
            store = process.get(alias) or {}
            rows.append(
                {
                    "alias": alias,
                    "info": current_connection_info(alias),
                    "stats": {k: v for k, v in store.items() if k != "connections"},
                    "connections": store.get("connections", []),
                }
            )
        self.record_stats({"databases": rows})
