"""Drive load with wrk (Debian's package) and parse what bench/wrk_report.lua prints."""

import json
import shutil
import subprocess
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
MARKER = "BENCH_RESULT "


def wrk_binary():
    """wrk's path; RuntimeError saying how to install it when missing."""
    path = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(path).exists():
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    return path


def wrk_version():
    """ "wrk X.Y.Z" for the results' meta."""
    out = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip().splitlines()
    return " ".join(text[0].split()[:2]) if text else "unknown"


def wrk_command(url, duration, concurrency, threads=1, timeout=10, script=LUA_SCRIPT, args=()):
    """``script`` must print the BENCH_RESULT line (wrk_report.lua, or one that loads it);
    ``args`` go to its ``init``."""
    threads = max(1, min(threads, concurrency))
    return [
        wrk_binary(),
        "--threads",
        str(threads),
        "--connections",
        str(concurrency),
        "--duration",
        f"{max(duration, 0.1):g}s",
        "--timeout",
        f"{timeout:g}s",
        "--script",
        str(script),
        url,
        *(["--", *map(str, args)] if args else []),
    ]


def parse_output(stdout):
    """The result dict from wrk's output (raises ValueError without the marker line)."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"wrk printed no {MARKER.strip()} line:\n{stdout[-2000:]}")
    seconds = data["duration_us"] / 1e6
    data["seconds"] = seconds
    data["rps"] = data["requests"] / seconds if seconds else 0.0
    data["ok_rps"] = data["ok"] / seconds if seconds else 0.0
    data["socket_errors"] = sum(data["errors"].values())
    latency = data.pop("latency_us")
    data["latency_ms"] = {key: value / 1000 for key, value in latency.items()}
    return data


def run_wrk(url, duration, concurrency, threads=1, timeout=10, script=LUA_SCRIPT, args=()):
    """Run wrk against ``url``; return the parsed result."""
    cmd = wrk_command(url, duration, concurrency, threads, timeout, script, args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 30)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return parse_output(result.stdout)
