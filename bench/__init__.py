"""The benchmark: ``python -m bench`` (``./deploy.sh bench``); see README "Performance".

configs (the matrix), database (its own PostgreSQL, pg_stat_activity/pg_stat_statements),
pgbouncer, server (the site per configuration), load (wrk + wrk_report.lua), runner (the
interleaved rounds), summary (medians, paired ratios), targets, report (json/md/chart/
README), profiling (py-spy), machine (what it ran on).
"""
