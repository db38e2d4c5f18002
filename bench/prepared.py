"""``python -m bench.prepared``: the demo pages and a heavier query, with and without
``OPTIONS["persistent"]["prepared_statements"]`` (psycopg 3; issue 16).

In one process, against the site's database (``DJANGO_ENV_FILE``/``DATABASE_URL``, as
``manage.py``; run with ``DJANGO_PSYCOPG=3``), two persistent_backend connections in
process mode, one per variant, each kept across units of work:

* ``plain``: Django's psycopg 3 defaults (client-side binding, nothing prepared);
* ``prepared``: the option on (server-side binding, psycopg's ``prepare_threshold``).

Workloads, each a unit of work that ends as a request does (the connection goes back to
its store): ``item_queries`` runs the item page's four queries (``catalog.views.
item_context``), ``item_page`` and ``home_page`` call the site's own views (queries and
templates, without the WSGI handler), ``heavy`` runs a four-table aggregate (items with
their category, tag and review counts and average rating, for one category).
Variants alternate unit by unit (the first one swapped every round), so both see the
same load; every variant runs past the threshold first, so the figures are steady state.
The ratio is ``plain / prepared`` of the medians per round: above 1, prepared is faster.
Writes ``bench/published/prepared.json`` (or ``--out``) and prints the markdown table that
docs/backend.md quotes (``python -m bench.published`` renders it; tests/test_docs.py checks).
"""

import argparse
import json
import os
import statistics
import sys
import time
from copy import deepcopy
from pathlib import Path

from bench.results import write_published

REPO_DIR = Path(__file__).resolve().parents[1]
PUBLISHED = REPO_DIR / "bench" / "published" / "prepared.json"
VARIANTS = ("plain", "prepared")
WORKLOADS = ("item_queries", "item_page", "home_page", "heavy")
LABELS = {
    "item_queries": "item page's 4 SELECTs alone",
    "item_page": "item page (`/items/<id>/`, 4 SELECTs + template)",
    "home_page": "home page (`/`, 2 SELECTs + template)",
    "heavy": "heavier query (4-table aggregate)",
}
WARMUP = 20  # units per variant and workload before timing: past psycopg's threshold


def wrappers(settings_dict):
    """{variant: DatabaseWrapper} on the site's database, each with its own store."""
    from persistent_backend.base import DatabaseWrapper

    found = {}
    for variant in VARIANTS:
        variant_settings = deepcopy(settings_dict)
        variant_settings["OPTIONS"]["persistent"] = {
            "mode": "process",
            "application_name": f"bench-{variant}",
            "prepared_statements": variant == "prepared",
        }
        found[variant] = DatabaseWrapper(variant_settings, alias=f"prepared-bench-{variant}")
    return found


def workloads(item_ids, category_ids):
    """{name: callable(n)}: one unit of work each, on ``django.db.connection``."""
    from django.db.models import Avg, Count
    from django.test import RequestFactory

    from catalog import views
    from catalog.models import Item

    requests = RequestFactory()
    home = requests.get("/")
    items = [(requests.get(f"/items/{i}/"), i) for i in item_ids]

    def item_page(n):
        request, item_id = items[n % len(items)]
        views.item_detail(request, item_id)

    def item_queries(n):
        views.item_context(items[n % len(items)][1])

    def heavy(n):
        list(
            Item.objects.filter(category_id=category_ids[n % len(category_ids)])
            .select_related("category")
            .annotate(
                tag_count=Count("tags", distinct=True),
                review_count=Count("reviews", distinct=True),
                rating=Avg("reviews__rating"),
            )
            .order_by("-review_count", "id")[:10]
        )

    return {
        "item_queries": item_queries,
        "item_page": item_page,
        "home_page": lambda n: views.home(home),
        "heavy": heavy,
    }


def unit(wrapper, work, n):
    """One unit of work on ``wrapper``, timed, ending as a request does."""
    from django.db import DEFAULT_DB_ALIAS, connections

    connections[DEFAULT_DB_ALIAS] = wrapper
    started = time.perf_counter()
    work(n)
    wrapper.close_if_unusable_or_obsolete()  # back to its store (request_finished)
    return time.perf_counter() - started


def measure(units, rounds):
    """{workload: {variant: median_us per round..., ratios...}} and the connections' facts."""
    from django.db import DEFAULT_DB_ALIAS, connections

    from catalog.models import Category, Item

    default = connections[DEFAULT_DB_ALIAS]
    item_ids = list(Item.objects.order_by("id").values_list("id", flat=True)[:200])
    category_ids = list(Category.objects.order_by("id").values_list("id", flat=True))
    default.close()
    if not item_ids:
        raise SystemExit("bench.prepared: the database has no demo data (./deploy.sh setup)")
    by_variant = wrappers(default.settings_dict)
    work = workloads(item_ids, category_ids)
    try:
        for wrapper in by_variant.values():
            for name in WORKLOADS:
                for n in range(WARMUP):
                    unit(wrapper, work[name], n)
        results = {}
        for name in WORKLOADS:
            medians = {variant: [] for variant in VARIANTS}
            for r in range(rounds):
                order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
                times = {variant: [] for variant in VARIANTS}
                for n in range(units):  # unit by unit: both variants see the same load
                    for variant in order:
                        times[variant].append(unit(by_variant[variant], work[name], n))
                for variant, values in times.items():
                    medians[variant].append(statistics.median(values) * 1e6)
            ratios = [p / q for p, q in zip(medians["plain"], medians["prepared"], strict=True)]
            results[name] = {
                "median_us": {v: round(statistics.median(m), 1) for v, m in medians.items()},
                "round_ratios": [round(x, 3) for x in ratios],
                "ratio": round(statistics.median(ratios), 3),
            }
        facts = {variant: persistent_stats(wrapper) for variant, wrapper in by_variant.items()}
    finally:
        for wrapper in by_variant.values():
            wrapper.close()
        connections[DEFAULT_DB_ALIAS] = default
    return results, facts


def persistent_stats(wrapper):
    """How many connections the variant opened and how many statements its session holds."""
    wrapper.ensure_connection()
    ((held,),) = wrapper.connection.execute(
        "SELECT count(*) FROM pg_prepared_statements", prepare=False
    ).fetchall()
    wrapper.close_if_unusable_or_obsolete()
    opened = wrapper.persistent_store().snapshot()["opened"]
    return {"opened": opened, "prepared_held": held}


def render(data):
    """docs/backend.md's table (markdown) from the JSON file's dict."""
    meta = data["meta"]
    lines = [
        f"Measured on {meta['date']} (load average {meta['load_before']:.2f} before; "
        f"PostgreSQL {meta['postgres']} on the same host, "
        f"psycopg {meta['psycopg']}, {meta['rounds']} interleaved rounds of {meta['units']} "
        f"units per variant) by `{meta['command']}`:",
        "",
        "| workload | plain (median) | prepared (median) | plain / prepared: median (rounds) |",
        "|---|---|---|---|",
    ]
    for name in WORKLOADS:
        row = data["results"][name]
        spread = f"{min(row['round_ratios']):.3f}-{max(row['round_ratios']):.3f}"
        lines.append(
            f"| {LABELS[name]} | {row['median_us']['plain']:.0f} us "
            f"| {row['median_us']['prepared']:.0f} us | {row['ratio']:.3f} ({spread}) |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.prepared", description=__doc__.split("\n")[0])
    p.add_argument("--units", type=int, default=200, help="units per variant per round")
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    p.add_argument("--out", type=Path, default=PUBLISHED, help=f"default {PUBLISHED}")
    args = p.parse_args(argv)
    if min(args.units, args.rounds) < 1:
        p.error("--units and --rounds must be >= 1")
    if os.environ.get("DJANGO_PSYCOPG") != "3":
        print("bench.prepared: prepared statements need psycopg 3: run with DJANGO_PSYCOPG=3")
        return 2
    sys.path.insert(0, str(REPO_DIR / "site"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    import psycopg

    django.setup()
    from django.db import connection

    load_before = os.getloadavg()[0]
    results, facts = measure(args.units, args.rounds)
    data = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": load_before,
            "postgres": ".".join(str(x) for x in divmod(connection.pg_version, 10000)),
            "psycopg": psycopg.__version__,
            "units": args.units,
            "rounds": args.rounds,
            "command": " ".join(
                ["DJANGO_PSYCOPG=3 python -m bench.prepared", *(argv or sys.argv[1:])]
            ),
        },
        "connections": facts,
        "results": results,
    }
    print(json.dumps(facts))
    return write_published(args.out, data, render(data))


if __name__ == "__main__":
    sys.exit(main())
