"""Issue 18 points 10 and 11: progress and partial results in long work, and the
gradient-flow example's --quick and output file."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import _progress

from conftest import require_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _series(n=120):
    return [10 + 3 * math.sin(0.4 * t) for t in range(n)]


def test_evaluate_default_progress_bar_on_terminal_only(capsys, monkeypatch):
    sr.evaluate(_series(), sr.Forecaster(hidden_size=4, seed=0))
    assert capsys.readouterr().err == ""              # not a terminal: silent
    monkeypatch.setattr(_progress, "stderr_is_tty", lambda: True)
    sr.evaluate(_series(), sr.Forecaster(hidden_size=4, seed=0))
    err = capsys.readouterr().err
    assert "evaluate" in err and "120" in err         # a bar, with the total


class _StopAt:
    """A river-style forecaster (persistence) that raises KeyboardInterrupt in learn_one of
    the value at index ``at`` (as Ctrl-C would)."""

    def __init__(self, at):
        self.at, self.seen, self.last = at, 0, None

    def learn_one(self, y, x=None):
        if self.seen == self.at:
            raise KeyboardInterrupt
        self.seen += 1
        self.last = y

    def forecast(self, horizon, xs=None):
        return [self.last] * horizon


def test_evaluate_ctrl_c_keeps_the_partial_result():
    ys = [float((t * 7) % 11) for t in range(100)]
    with pytest.raises(KeyboardInterrupt) as info:
        sr.evaluate(ys, _StopAt(60), horizon=1)
    part = info.value.evaluation
    assert isinstance(part, sr.Evaluation) and part.steps == 60
    # the forecaster is persistence: its MAE is persistence's, over the points scored
    # before the interrupt (t = 1..60: the forecast for t=60 was scored before learn_one)
    errs = [abs(ys[t] - ys[t - 1]) for t in range(1, 61)]
    assert part.n == [60]
    assert part.mae[0] == pytest.approx(np.mean(errs), rel=1e-12)
    assert part.persistence_mae[0] == pytest.approx(np.mean(errs), rel=1e-12)


def _windows():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(5, 1)).astype(np.float32) for _ in range(6)]
    Y = [np.full(1, float(x.sum()), np.float32) for x in X]
    return X, Y


def test_fit_callback_per_epoch_with_loss_and_time():
    X, Y = _windows()
    calls = []
    tr = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=1, seed=0), loss="mse")
    hist = tr.fit(X, [y[None, :].repeat(5, 0) for y in Y], epochs=4, seed=0,
                  callback=lambda e, loss, sec: calls.append((e, loss, sec)))
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert [c[1] for c in calls] == hist
    assert all(isinstance(c[2], float) and c[2] >= 0 for c in calls)


def test_fit_callback_can_stop_training_and_epochs_done_stay():
    X, Y = _windows()
    T = [y[None, :].repeat(5, 0) for y in Y]
    a = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=1, seed=0))
    b = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=1, seed=0))

    def stop(epoch, loss, sec):
        if epoch == 1:
            raise StopIteration

    with pytest.raises(StopIteration):
        a.fit(X, T, epochs=5, seed=0, callback=stop)
    b.fit(X, T, epochs=2, seed=0)
    for k, v in a.net.state_dict().items():
        np.testing.assert_array_equal(v, b.net.state_dict()[k], err_msg=k)


def test_fit_progress_bar_on_terminal_only(capsys, monkeypatch):
    X, Y = _windows()
    T = [y[None, :].repeat(5, 0) for y in Y]
    tr = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=1, seed=0))
    tr.fit(X, T, epochs=2, seed=0)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "stderr_is_tty", lambda: True)
    tr.fit(X, T, epochs=2, seed=0)
    err = capsys.readouterr().err
    assert "fit" in err and "loss" in err


@pytest.mark.parametrize("kw, exc, words", [
    ({"callback": 3}, TypeError, "callback must be None or a callable"),
    ({"progress": "yes"}, TypeError, "progress must be None, True or False"),
])
def test_fit_bad_progress_or_callback_changes_nothing(kw, exc, words):
    X, Y = _windows()
    T = [y[None, :].repeat(5, 0) for y in Y]
    tr = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=1, seed=0))
    before = {k: v.tobytes() for k, v in tr.net.state_dict().items()}
    with pytest.raises(exc, match=words):
        tr.fit(X, T, epochs=1, **kw)
    assert {k: v.tobytes() for k, v in tr.net.state_dict().items()} == before


def test_gradient_flow_quick_writes_nothing_without_out(tmp_path):
    require_file(os.path.join(ROOT, "examples", "gradient_flow.py"),
                 "examples/gradient_flow.py")   # skips only in the installed-wheel run
    env = {k: v for k, v in os.environ.items() if k != "STREAMRNN_EXAMPLE_QUICK"}
    env["MPLBACKEND"] = "Agg"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "gradient_flow.py"),
                        "--quick"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "H=32, T=40" in r.stdout                  # the quick sizes
    assert "no plot saved" in r.stdout
    assert list(tmp_path.iterdir()) == []            # nothing written in the current folder
