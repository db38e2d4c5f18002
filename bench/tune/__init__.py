"""Measured tuning (``./deploy.sh tune``): the driver that measures daemon shapes.

The decisions (search space, search, objective, tuned.conf) are apache_conf.tune's; this
package starts the site per shape (bench.server), loads it (bench.load's wrk runner with
wrk_mix.lua), watches it (measure.py) and writes the outputs (report.py).
"""
