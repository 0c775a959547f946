"""The five task-shape examples (issue: one-to-one, one-to-n, n-to-n, n-to-one, n-to-m)
train in their --quick mode and reach accuracies far from chance; the tagging example also
shows why it needs a bidirectional network. Full runs print the figures quoted in the
README (each well under a minute)."""
from __future__ import annotations

import importlib.util
import os

import pytest

from conftest import require_file

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")
require_file(EXAMPLES, "examples/")   # skips only in the installed-wheel run


def run(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(["--quick"])


def test_one_to_one_beats_a_linear_classifier():
    r = run("one_to_one")
    assert r["accuracy"] > 0.9 and r["linear"] < 0.5, r


def test_one_to_n_generates_the_curves():
    r = run("one_to_n_generate")
    assert r["median_rmse"] < 0.25 * r["baseline_rmse"], r
    assert r["within_0.1"] > 0.4, r


def test_n_to_n_tagging_needs_the_future():
    r = run("n_to_n_tagging")
    bi, uni = r["bidirectional LSTM"], r["unidirectional LSTM"]
    assert bi["cities"] > 0.95 and bi["cities, cue after"] > 0.95, r
    # reading left to right the tag of "Beijing is ..." is a coin flip
    assert uni["cities, cue after"] < 0.75, r


def test_n_to_one_classifies_waveforms():
    r = run("n_to_one_classify")
    assert r["accuracy"] > 0.7, r


def test_n_to_m_rewrites_dates():
    r = run("n_to_m_dates")
    assert r["accuracy"] > 0.8 and r["char_accuracy"] > 0.9, r
