"""The benchmark: ``python -m bench`` (``./deploy.sh bench``); see docs/performance.md.

configs (the matrix), database (its own PostgreSQL, pg_stat_activity/pg_stat_statements),
pgbouncer, server (the site per configuration), load (wrk + wrk_report.lua), runner (the
interleaved rounds), summary (medians, paired ratios), targets, report (json/md/chart),
published (the committed runs and the docs' figures), micro (one connection's costs),
profiling (py-spy), machine (what it ran on).
"""
