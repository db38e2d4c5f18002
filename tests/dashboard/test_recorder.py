"""The metrics middleware's counters: one slot per thread, no lock per request, none lost."""

import threading

import pytest

from dashboard.histogram import bucket_index
from dashboard.metrics import Recorder


def serve(recorder, count, status=200, seconds=0.002):
    for _ in range(count):
        slot = recorder.begin()
        recorder.end(slot, seconds, status)


def test_every_thread_counts_and_ended_threads_are_folded():
    recorder = Recorder()
    threads = [threading.Thread(target=serve, args=(recorder, 2000)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    serve(recorder, 5, status=503, seconds=0.2)  # this thread: still alive
    figures = recorder.read()
    assert figures["requests"] == 8 * 2000 + 5 == sum(figures["buckets"])
    assert figures["errors_5xx"] == 5
    assert figures["buckets"][bucket_index(0.002)] == 8 * 2000
    assert figures["in_flight"] == 0
    assert figures["duration_sum"] == pytest.approx(8 * 2000 * 0.002 + 5 * 0.2)
    assert len(recorder._slots) == 1  # the ended threads' slots were folded into one
    assert recorder.read() == figures  # folding loses and doubles nothing


def test_uncounted_requests_are_busy_time_only_and_in_flight_is_live():
    recorder = Recorder()
    slot = recorder.begin()
    assert recorder.read()["in_flight"] == 1
    recorder.end(slot, 0.5, 200, counted=False)
    figures = recorder.read()
    assert figures["requests"] == 0 and figures["in_flight"] == 0
    assert figures["busy_seconds"] == pytest.approx(0.5)
