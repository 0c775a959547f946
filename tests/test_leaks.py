"""Leaks: many steps through every stepping entry point and many create/use/destroy cycles of
networks, states, batches, trainers and forecasters (with save/load and raised errors) leave
resident memory flat and traced Python allocations without growth.

CI runs 3*10^5 steps and 3000 cycles (a few seconds); the full figures come from
``python benchmarks/leaks.py --steps 10000000 --cycles 100000`` (STREAMRNN_LONG=1 runs them
here), recorded in RELIABILITY.md."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from _figures import long_run, record
from conftest import require_file

_LEAKS = Path(__file__).resolve().parents[1] / "benchmarks" / "leaks.py"
require_file(_LEAKS, "benchmarks/leaks.py")   # skips only in the installed-wheel run
_spec = importlib.util.spec_from_file_location("srnn_leaks", _LEAKS)
leaks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(leaks)

STEPS, CYCLES = (10_000_000, 100_000) if long_run() else (300_000, 3_000)


@pytest.fixture(scope="module")
def figures():
    return leaks.measure(STEPS, CYCLES)


def test_steps_keep_memory_flat(figures):
    f = figures["steps"]
    assert f["steps"] >= STEPS
    assert f["rss_end"] - f["rss_start"] < 1 << 20, f        # < 1 MiB (pages, allocator)
    # a leak of one small object per call would be >= 16 bytes times thousands of calls
    assert f["traced_growth"] < 4096, f
    record("steps with flat RSS", f["steps"])
    record("steps: RSS growth (bytes)", f["rss_end"] - f["rss_start"])
    record("steps: traced growth (bytes) over traced steps", [f["traced_growth"],
                                                              f["traced_steps"]])


def test_create_destroy_cycles_keep_memory_flat(figures):
    f = figures["cycles"]
    assert f["cycles"] >= CYCLES
    assert f["rss_end"] - f["rss_start"] < 1 << 20, f
    assert f["traced_growth"] < 4 * f["traced_cycles"] + 4096, f
    record("create/destroy cycles with flat RSS", f["cycles"])
    record("cycles: RSS growth (bytes)", f["rss_end"] - f["rss_start"])
    record("cycles: traced growth (bytes) over traced cycles", [f["traced_growth"],
                                                                f["traced_cycles"]])
