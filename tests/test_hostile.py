"""Hostile input across the whole public API, in one table.

Every row calls one public entry point with one bad argument (wrong shape, dtype, type,
NaN/inf where finite values are required, absurd sizes, a state of another network,
read-only ``out``, unknown names...). Each must raise the row's exception with a message
naming the argument, and leave everything (every network's weights, every state and batch,
the trainers' state, ring buffers, moments and counters, the forecaster and the checkpoint
file) bit for bit as before. The second table: inputs that are accepted (non-contiguous,
read-only, lists, other integer types) must give exactly the numbers of the plain input.

The network entry points' full matrix (416 cases: every cell and dtype) is
tests/test_errors.py; here each network entry point has representative rows so that this
table alone covers every public entry point. The command line is covered by rows running
``streamrnn.cli.main`` (clear message on stderr, nonzero exit code).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import cli

from _figures import record
from conftest import optional_missing

F64 = np.float64


class World:
    """One of every public object, in a used (non-trivial) state."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        self.net = sr.LSTM(3, 4, output_size=2, dtype="float64", seed=1)
        self.net32 = sr.GRU(3, 4, dtype="float32", seed=2)
        self.state = self.net.new_state()
        self.net.run(rng.standard_normal((5, 3)), self.state)
        self.state32 = self.net32.new_state()
        self.batch = self.net.new_states(4)
        self.net.step_many(rng.standard_normal((4, 3)), self.batch)
        self.trainer = sr.OnlineTrainer(sr.GRU(3, 4, output_size=2, dtype="float64", seed=3),
                                        k1=2, k2=4)
        self.trainer.learn_many(rng.standard_normal((9, 3)), rng.standard_normal((9, 2)))
        self.xtrainer = sr.OnlineTrainer(sr.RNN(3, 4, output_size=3, dtype="float64", seed=4),
                                         loss="cross_entropy", k1=1, k2=3)
        self.xtrainer.learn_many(rng.standard_normal((6, 3)), np.array([0, 1, 2, -1, 1, 0]))
        self.fc = sr.Forecaster(hidden_size=4, n_features=2, seed=5)
        for t in range(12):
            self.fc.learn_one(float(np.sin(t)), [0.1 * t, 1.0], key="a")
        # windows: a bidirectional network, a SequenceTrainer on it, a Seq2Seq (all used)
        self.bnet = sr.LSTM(3, 4, output_size=2, bidirectional=True, dtype="float64", seed=7)
        self.seq = sr.SequenceTrainer(self.bnet, loss="mse", clip_norm=1.0)
        self.seq.learn_sequence(rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
        self.s2s = sr.Seq2Seq(sr.GRU(3, 4, dtype="float64", seed=8),
                              sr.GRU(3, 4, output_size=3, dtype="float64", seed=9),
                              loss="cross_entropy", start=0)
        self.s2s.learn(rng.standard_normal((4, 3)), [1, 2, 0])
        self.ckpt = tmp / "ckpt.srnn"
        sr.save(self.trainer, self.ckpt)
        self.csv = tmp / "series.csv"
        self.csv.write_text("t,value\n" + "".join(f"{t},{np.sin(t):.4f}\n" for t in range(30)))
        self.tmp = tmp

    def freeze(self):
        out = {}
        for name in ("net", "net32"):
            out[name] = getattr(self, name).parameters().tobytes()
        for name in ("state", "state32", "batch"):
            s = getattr(self, name)
            out[name] = s.h.tobytes() + (b"" if s.c is None else s.c.tobytes())
        for name in ("trainer", "xtrainer"):
            tr = getattr(self, name)
            snap = tr._snapshot()
            out[name] = (repr(snap["counters"]), tr.net.parameters().tobytes(),
                         b"".join(v.tobytes() for k, v in sorted(snap.items())
                                  if isinstance(v, np.ndarray)))
        for name in ("seq", "s2s"):
            tr = getattr(self, name)
            snap = tr._upd._snapshot()
            nets = [tr.net] if name == "seq" else [tr.encoder, tr.decoder]
            out[name] = (repr(snap["counters"]), snap["m1"].tobytes(), snap["m2"].tobytes(),
                         b"".join(n.parameters().tobytes() for n in nets))
        p = self.tmp / "freeze.srnn"
        sr.save(self.fc, p)
        out["fc"] = p.read_bytes()
        out["ckpt"] = self.ckpt.read_bytes()
        return out


def ro(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


X3 = np.array([0.1, -0.2, 0.3])


def _needs(module, case):
    """A table row that needs an optional package: skipped when it is not installed."""
    ok = not optional_missing(module)   # fails instead when STREAMRNN_REQUIRE names it
    return pytest.param(*case, id=case[0],
                        marks=pytest.mark.skipif(not ok, reason=f"{module} not installed"))


# (id, call(w), exception, argument name that the message must contain)
CASES = [
    # ---------------------------------------------------------------- networks (more in
    # test_errors.py)
    ("LSTM input_size 0", lambda w: sr.LSTM(0, 4), ValueError, "input_size"),
    ("LSTM hidden_size 10**12", lambda w: sr.LSTM(3, 10 ** 12), ValueError, "hidden_size"),
    ("LSTM num_layers float", lambda w: sr.LSTM(3, 4, 1.5), TypeError, "num_layers"),
    ("GRU dtype int8", lambda w: sr.GRU(3, 4, dtype="int8"), (TypeError, ValueError), "dtype"),
    ("RNN nonlinearity", lambda w: sr.RNN(3, 4, nonlinearity="sigmoid"), ValueError,
     "nonlinearity"),
    ("LSTM seed str", lambda w: sr.LSTM(3, 4, seed="x"), TypeError, "seed"),
    ("step x wrong length", lambda w: w.net.step(np.zeros(4), w.state), ValueError, "x"),
    ("step x float32", lambda w: w.net.step(X3.astype(np.float32), w.state), TypeError, "x"),
    ("step x NaN", lambda w: w.net.step([0.0, np.nan, 0.0], w.state), ValueError, "x"),
    ("step x inf", lambda w: w.net.step([0.0, np.inf, 0.0], w.state), ValueError, "x"),
    ("step x str", lambda w: w.net.step("abc", w.state), TypeError, "x"),
    ("step x object array", lambda w: w.net.step(np.array([1, "a", 2], dtype=object), w.state),
     TypeError, "x"),
    ("step state of another net", lambda w: w.net.step(X3, w.state32), ValueError, "state"),
    ("step state wrong type", lambda w: w.net.step(X3, w.batch), TypeError, "state"),
    ("step out read-only", lambda w: w.net.step(X3, w.state, out=ro(np.zeros(2))), ValueError,
     "out"),
    ("step out wrong dtype", lambda w: w.net.step(X3, w.state, out=np.zeros(2, np.float32)),
     TypeError, "out"),
    ("step out non-contiguous", lambda w: w.net.step(X3, w.state, out=np.zeros(4)[::2]),
     ValueError, "out"),
    ("step out aliases state", lambda w: w.net.step(X3, w.state, out=w.state.h[0, :2]),
     ValueError, "out"),
    ("run X 1-D", lambda w: w.net.run(X3, w.state), ValueError, "X"),
    ("run X NaN in last row", lambda w: w.net.run(np.vstack([np.zeros((6, 3)),
                                                              [[0, 0, np.nan]]]), w.state),
     ValueError, "X"),
    ("run out wrong shape", lambda w: w.net.run(np.zeros((5, 3)), w.state, out=np.zeros((4, 2))),
     ValueError, "out"),
    ("step_many X rows", lambda w: w.net.step_many(np.zeros((3, 3)), w.batch), ValueError, "X"),
    ("step_many index repeated", lambda w: w.net.step_many(np.zeros((2, 3)), w.batch,
                                                           index=[1, 1]), ValueError, "index"),
    ("step_many index out of range", lambda w: w.net.step_many(np.zeros((1, 3)), w.batch,
                                                               index=[4]), ValueError, "index"),
    ("step_many index floats", lambda w: w.net.step_many(np.zeros((1, 3)), w.batch,
                                                         index=[0.5]), TypeError, "index"),
    ("new_states 0", lambda w: w.net.new_states(0), ValueError, "n"),
    ("new_states 10**15", lambda w: w.net.new_states(10 ** 15), ValueError, "n"),
    ("new_states float", lambda w: w.net.new_states(2.0), TypeError, "n"),
    ("batch index str", lambda w: w.batch["a"], TypeError, "index"),
    ("batch.reset index repeated", lambda w: w.batch.reset([0, 0]), ValueError, "index"),
    ("load_state_dict missing key", lambda w: w.net.load_state_dict({}), (KeyError, ValueError),
     "weight_ih_l0"),
    ("load_state_dict NaN", lambda w: w.net.load_state_dict(
        {k: np.full_like(v, np.nan) for k, v in w.net.state_dict().items()}), ValueError,
     "weight_ih_l0"),
    # ---------------------------------------------------------------- trainers
    ("OnlineTrainer net str", lambda w: sr.OnlineTrainer("lstm"), TypeError, "net"),
    ("OnlineTrainer loss", lambda w: sr.OnlineTrainer(w.net, loss="mae"), ValueError, "loss"),
    ("OnlineTrainer k1 0", lambda w: sr.OnlineTrainer(w.net, k1=0), ValueError, "k1"),
    ("OnlineTrainer k2 10**12", lambda w: sr.OnlineTrainer(w.net, k2=10 ** 12), ValueError,
     "k2"),
    ("OnlineTrainer k2 < k1", lambda w: sr.OnlineTrainer(w.net, k1=4, k2=2), ValueError, "k2"),
    ("OnlineTrainer optimizer str", lambda w: sr.OnlineTrainer(w.net, optimizer="adam"),
     TypeError, "optimizer"),
    ("OnlineTrainer clip_norm -1", lambda w: sr.OnlineTrainer(w.net, clip_norm=-1.0), ValueError,
     "clip_norm"),
    ("OnlineTrainer clip_value NaN", lambda w: sr.OnlineTrainer(w.net, clip_value=np.nan),
     ValueError, "clip_value"),
    ("learn_one x wrong length", lambda w: w.trainer.learn_one(np.zeros(2), np.zeros(2)),
     ValueError, "x"),
    ("learn_one x NaN", lambda w: w.trainer.learn_one([np.nan, 0, 0], np.zeros(2)), ValueError,
     "x"),
    ("learn_one x float32", lambda w: w.trainer.learn_one(X3.astype(np.float32), np.zeros(2)),
     TypeError, "x"),
    ("learn_one y wrong length", lambda w: w.trainer.learn_one(X3, np.zeros(3)), ValueError, "y"),
    ("learn_one y inf", lambda w: w.trainer.learn_one(X3, [np.inf, 0.0]), ValueError, "y"),
    ("learn_one y str", lambda w: w.trainer.learn_one(X3, "ab"), TypeError, "y"),
    ("learn_one class out of range", lambda w: w.xtrainer.learn_one(X3, 3), ValueError, "y"),
    ("learn_one class bool", lambda w: w.xtrainer.learn_one(X3, True), TypeError, "y"),
    ("learn_one class float", lambda w: w.xtrainer.learn_one(X3, 1.5), TypeError, "y"),
    ("learn_many X 1-D", lambda w: w.trainer.learn_many(X3, None), ValueError, "X"),
    ("learn_many X NaN late", lambda w: w.trainer.learn_many(
        np.vstack([np.zeros((8, 3)), [[np.nan, 0, 0]]]), np.zeros((9, 2))), ValueError, "X"),
    ("learn_many Y rows", lambda w: w.trainer.learn_many(np.zeros((5, 3)), np.zeros((4, 2))),
     ValueError, "Y"),
    ("learn_many Y inf late", lambda w: w.trainer.learn_many(
        np.zeros((5, 3)), np.vstack([np.zeros((4, 2)), [[np.inf, 0]]])), ValueError, "y|Y"),
    ("learn_many classes float", lambda w: w.xtrainer.learn_many(np.zeros((2, 3)), [0.0, 1.0]),
     TypeError, "Y"),
    ("learn_many classes range", lambda w: w.xtrainer.learn_many(np.zeros((2, 3)), [0, 7]),
     ValueError, "Y"),
    ("predict_one x wrong length", lambda w: w.trainer.predict_one(np.zeros(5)), ValueError, "x"),
    ("predict_one x inf", lambda w: w.trainer.predict_one([np.inf, 0, 0]), ValueError, "x"),
    ("advance x NaN", lambda w: w.trainer.advance([0, np.nan, 0]), ValueError, "x"),
    ("observe without advance", lambda w: w.trainer.observe(np.zeros(2)), ValueError, "advance"),
    # ---------------------------------------------------------------- optimizers
    ("SGD lr -1", lambda w: sr.SGD(-1.0), ValueError, "lr"),
    ("SGD lr NaN", lambda w: sr.SGD(np.nan), ValueError, "lr"),
    ("SGD lr str", lambda w: sr.SGD("0.1"), TypeError, "lr"),
    ("SGD momentum -0.1", lambda w: sr.SGD(0.1, momentum=-0.1), ValueError, "momentum"),
    ("SGD nesterov str", lambda w: sr.SGD(0.1, momentum=0.9, nesterov="yes"), TypeError,
     "nesterov"),
    ("Adam betas (1.5, 0.9)", lambda w: sr.Adam(betas=(1.5, 0.9)), ValueError, "betas"),
    ("Adam betas 3-tuple", lambda w: sr.Adam(betas=(0.9, 0.9, 0.9)), (TypeError, ValueError),
     "betas"),
    ("Adam eps 0", lambda w: sr.Adam(eps=0.0), ValueError, "eps"),
    ("Adam weight_decay inf", lambda w: sr.Adam(weight_decay=np.inf), ValueError,
     "weight_decay"),
    ("RMSprop alpha 2", lambda w: sr.RMSprop(alpha=2.0), ValueError, "alpha"),
    # ---------------------------------------------------------------- forecaster
    ("Forecaster cell", lambda w: sr.Forecaster(cell="transformer"), ValueError, "cell"),
    ("Forecaster hidden_size 0", lambda w: sr.Forecaster(hidden_size=0), ValueError,
     "hidden_size"),
    ("Forecaster k2 10**12", lambda w: sr.Forecaster(k2=10 ** 12), ValueError, "k2"),
    ("Forecaster dtype", lambda w: sr.Forecaster(dtype="float16"), (TypeError, ValueError),
     "dtype"),
    ("Forecaster weights", lambda w: sr.Forecaster(weights="each"), ValueError, "weights"),
    ("Forecaster n_features -1", lambda w: sr.Forecaster(n_features=-1), ValueError,
     "n_features"),
    ("Forecaster learn_one y str", lambda w: w.fc.learn_one("1.0", [0, 0], key="a"), TypeError,
     "y"),
    ("Forecaster learn_one y inf", lambda w: w.fc.learn_one(np.inf, [0, 0], key="a"), ValueError,
     "y"),
    ("Forecaster learn_one y 1e200", lambda w: w.fc.learn_one(1e200, [0, 0], key="a"),
     ValueError, "y"),
    ("Forecaster learn_one x -1e160", lambda w: w.fc.learn_one(1.0, [-1e160, 0], key="a"),
     ValueError, "x"),
    ("Forecaster learn_one x length", lambda w: w.fc.learn_one(1.0, [0, 0, 0], key="a"),
     ValueError, "x"),
    ("Forecaster learn_one x inf", lambda w: w.fc.learn_one(1.0, [np.inf, 0], key="a"),
     ValueError, "x"),
    ("Forecaster learn_one unhashable key", lambda w: w.fc.learn_one(1.0, [0, 0], key=[1]),
     TypeError, "key"),
    ("Forecaster learn_many xs length", lambda w: w.fc.learn_many([1.0, 2.0], [[0, 0]], key="a"),
     ValueError, "xs"),
    ("Forecaster forecast horizon 0", lambda w: w.fc.forecast(0, key="a"), ValueError,
     "horizon"),
    ("Forecaster forecast horizon float", lambda w: w.fc.forecast(1.5, key="a"), TypeError,
     "horizon"),
    ("Forecaster forecast xs length", lambda w: w.fc.forecast(2, [[0, 0]], key="a"), ValueError,
     "xs"),
    ("Forecaster forecast xs inf", lambda w: w.fc.forecast(1, [[np.inf, 0]], key="a"),
     ValueError, "xs"),
    ("Forecaster stats unknown key", lambda w: w.fc.stats("zz"), KeyError, "key"),
    ("Forecaster forget unknown key", lambda w: w.fc.forget("zz"), KeyError, "key"),
    # ---------------------------------------------------------------- save / load
    ("save unsupported object", lambda w: sr.save(object(), w.ckpt), TypeError, "save"),
    ("save metadata list", lambda w: sr.save(w.net, w.ckpt, metadata=[1]), TypeError,
     "metadata"),
    ("save metadata NaN", lambda w: sr.save(w.net, w.ckpt, metadata={"a": np.nan}), TypeError,
     "metadata"),
    ("save into a missing directory", lambda w: sr.save(w.net, w.tmp / "no" / "x.srnn"),
     FileNotFoundError, "no"),
    ("load expect 5", lambda w: sr.load(w.ckpt, 5), TypeError, "expect"),
    ("load expect wrong class", lambda w: sr.load(w.ckpt, sr.Forecaster), TypeError,
     "Forecaster"),
    ("load path None", lambda w: sr.load(None), TypeError, "path|NoneType"),
    ("load a directory", lambda w: sr.load(w.tmp), (IsADirectoryError, PermissionError), "tmp|"),
    ("load a CSV", lambda w: sr.load(w.csv), sr.FileFormatError, "series.csv"),
    # ---------------------------------------------------------------- evaluate
    ("evaluate horizon 0", lambda w: sr.evaluate([1.0, 2.0], w.fc, 0), ValueError, "horizon"),
    ("evaluate grace_period -1", lambda w: sr.evaluate([1.0, 2.0], w.fc, grace_period=-1),
     ValueError, "grace_period"),
    ("evaluate series inf", lambda w: sr.evaluate([1.0, np.inf], w.fc), ValueError, "series"),
    ("evaluate series str", lambda w: sr.evaluate("abc", w.fc), TypeError, "series"),
    ("evaluate series 2-D", lambda w: sr.evaluate([[1.0, 2.0]], w.fc), ValueError, "series"),
    ("evaluate forecaster object", lambda w: sr.evaluate([1.0], object()), TypeError,
     "forecaster"),
    ("evaluate x length", lambda w: sr.evaluate([1.0, 2.0], w.fc, x=[[0, 0]]), ValueError, "x"),
    # ---------------------------------------------------------------- windows
    ("bidirectional flag str", lambda w: sr.LSTM(3, 4, bidirectional="yes"), TypeError,
     "bidirectional"),
    ("bidirectional step", lambda w: w.bnet.step(X3, w.state), ValueError, "bidirectional"),
    ("bidirectional new_state", lambda w: w.bnet.new_state(), ValueError, "bidirectional"),
    ("bidirectional OnlineTrainer", lambda w: sr.OnlineTrainer(w.bnet), ValueError,
     "bidirectional"),
    ("bidirectional run X NaN", lambda w: w.bnet.run(np.full((3, 3), np.nan)), ValueError, "X"),
    ("SequenceTrainer loss", lambda w: sr.SequenceTrainer(w.bnet, loss="hinge"), ValueError,
     "loss"),
    ("SequenceTrainer net str", lambda w: sr.SequenceTrainer("net"), TypeError, "net"),
    ("SequenceTrainer clip_norm", lambda w: sr.SequenceTrainer(w.bnet, clip_norm=-1),
     ValueError, "clip_norm"),
    ("learn_sequence X columns", lambda w: w.seq.learn_sequence(np.zeros((5, 2)),
                                                                np.zeros((5, 2))),
     ValueError, "X"),
    ("learn_sequence X float32", lambda w: w.seq.learn_sequence(np.zeros((5, 3), np.float32),
                                                                np.zeros((5, 2))),
     TypeError, "X"),
    ("learn_sequence Y rows", lambda w: w.seq.learn_sequence(np.zeros((5, 3)),
                                                             np.zeros((4, 2))),
     ValueError, "Y"),
    ("learn_sequence Y inf", lambda w: w.seq.learn_sequence(np.zeros((5, 3)),
                                                            np.full((5, 2), np.inf)),
     ValueError, "Y"),
    ("learn_sequence X empty", lambda w: w.seq.learn_sequence(np.zeros((0, 3)),
                                                              np.zeros((0, 2))),
     ValueError, "X"),
    ("fit lengths differ", lambda w: w.seq.fit([np.zeros((5, 3))], []), ValueError, "targets"),
    ("fit epochs 0", lambda w: w.seq.fit([np.zeros((5, 3))], [np.zeros((5, 2))], epochs=0),
     ValueError, "epochs"),
    ("fit batch_size float", lambda w: w.seq.fit([np.zeros((5, 3))], [np.zeros((5, 2))],
                                                 batch_size=1.5), TypeError, "batch_size"),
    ("fit bad last window", lambda w: w.seq.fit([np.zeros((5, 3)), np.zeros((5, 4))],
                                                [np.zeros((5, 2))] * 2), ValueError,
     r"windows\[1\]"),
    ("learn_batch target shape", lambda w: w.seq.learn_batch([np.zeros((5, 3))],
                                                             [np.zeros((5, 3))]),
     ValueError, r"targets\[0\]"),
    ("predict X columns", lambda w: w.seq.predict(np.zeros((5, 4))), ValueError, "X"),
    ("Seq2Seq context", lambda w: sr.Seq2Seq(sr.GRU(3, 4), sr.GRU(3, 4, output_size=3),
                                             context="attention"), ValueError, "context"),
    ("Seq2Seq decoder without head", lambda w: sr.Seq2Seq(sr.GRU(3, 4), sr.GRU(3, 4)),
     ValueError, "decoder"),
    ("Seq2Seq hidden sizes differ", lambda w: sr.Seq2Seq(sr.GRU(3, 4),
                                                         sr.GRU(3, 5, output_size=3)),
     ValueError, "hidden_size"),
    ("Seq2Seq start class", lambda w: sr.Seq2Seq(sr.GRU(3, 4), sr.GRU(3, 4, output_size=3),
                                                 loss="cross_entropy", start=7),
     ValueError, "start"),
    ("Seq2Seq learn class 5", lambda w: w.s2s.learn(np.zeros((4, 3)), [0, 5]), ValueError,
     "Y_tgt"),
    ("Seq2Seq learn X columns", lambda w: w.s2s.learn(np.zeros((4, 2)), [0, 1]), ValueError,
     "X_src"),
    ("generate max_len -1", lambda w: w.s2s.generate(np.zeros((4, 3)), -1), ValueError,
     "max_len"),
    ("generate stop str", lambda w: w.s2s.generate(np.zeros((4, 3)), 3, stop="x"), TypeError,
     "stop"),
    # ---------------------------------------------------------------- interop (rows need
    # their package; absent: the row is skipped)
    _needs("torch", ("from_torch object", lambda w: sr.from_torch(object()), TypeError,
                     "module")),
    _needs("torch", ("to_torch str", lambda w: sr.to_torch("net"), TypeError, "net")),
    _needs("onnx", ("to_onnx opset 5", lambda w: sr.to_onnx(w.net, opset=5), ValueError,
                    "opset")),
    _needs("onnx", ("from_onnx int", lambda w: sr.from_onnx(123), TypeError,
                    "model_or_path")),
    _needs("keras", ("from_keras object", lambda w: sr.from_keras(object()), TypeError,
                     "keras")),
]


# (id, argv(w), text that stderr must contain)
CLI_CASES = [
    ("missing file", lambda w: ["forecast", str(w.tmp / "nope.csv"), "-c", "value"],
     "nope.csv"),
    ("horizon 0", lambda w: ["forecast", str(w.csv), "--horizon", "0"], "horizon|-H"),
    ("unknown column", lambda w: ["forecast", str(w.csv), "--column", "price"], "price"),
    ("corrupt checkpoint", lambda w: ["forecast", str(w.csv), "--load", str(w.csv)], "series.csv"),
    ("checkpoint of a trainer", lambda w: ["forecast", str(w.csv), "--load", str(w.ckpt)],
     "ckpt.srnn"),
    ("unknown cell", lambda w: ["forecast", str(w.csv), "--cell", "tcn"], "cell"),
    ("hidden -3", lambda w: ["forecast", str(w.csv), "--hidden", "-3"], "hidden"),
    ("unknown command", lambda w: ["train"], "train"),
]


@pytest.mark.parametrize("label, call, exc, name", CASES,
                         ids=[c[0] if isinstance(c, tuple) else c.id for c in CASES])
def test_bad_input_raises_and_changes_nothing(tmp_path, label, call, exc, name):
    w = World(tmp_path)
    before = w.freeze()
    with pytest.raises(exc) as info:
        call(w)
    msg = str(info.value)
    assert re.search(name, msg), f"{label}: message does not name {name!r}: {msg}"
    after = w.freeze()
    for k in before:
        assert before[k] == after[k], f"{label}: {k} changed after the error"


@pytest.mark.parametrize("label, argv, needle", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_clear_message_and_exit_code(tmp_path, capsys, label, argv, needle):
    w = World(tmp_path)
    before = w.freeze()
    code = cli.main(argv(w))
    err = capsys.readouterr().err
    assert code != 0, f"{label}: exit code 0"
    assert re.search(needle, err), f"{label}: stderr does not say {needle!r}: {err}"
    assert "Traceback" not in err
    assert w.freeze() == before


@pytest.fixture(scope="module", autouse=True)
def _record_counts():
    """The size of the tables, a figure for RELIABILITY.md (not a test: it asserts nothing)."""
    yield
    record("hostile-input cases (API table + CLI)", len(CASES) + len(CLI_CASES))


# ------------------------------------------------------------------ accepted variants
def variants(a):
    """The same values as: a list, a read-only array, a non-contiguous view."""
    a = np.asarray(a)
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    return {"list": a.tolist(), "read-only": ro(a), "non-contiguous": wide[..., ::2]}


ACCEPTED = [
    ("step x", lambda w, v: w.net.step(v, w.state), X3),
    ("run X", lambda w, v: w.net.run(v, w.state), np.linspace(-1, 1, 15).reshape(5, 3)),
    ("step_many X", lambda w, v: w.net.step_many(v, w.batch), np.linspace(-1, 1, 12)
     .reshape(4, 3)),
    ("learn_one x", lambda w, v: w.trainer.learn_one(v, np.array([0.5, -0.5])), X3),
    ("learn_one y", lambda w, v: w.trainer.learn_one(X3, v), np.array([0.5, -0.5])),
    ("learn_many X", lambda w, v: w.trainer.learn_many(v, None), np.linspace(-1, 1, 15)
     .reshape(5, 3)),
    ("predict_one x", lambda w, v: w.trainer.predict_one(v), X3),
    ("Forecaster x", lambda w, v: (w.fc.learn_one(0.3, v, key="a"), w.fc.forecast(2, key="a")),
     np.array([0.5, 1.0])),
    ("bidirectional run X", lambda w, v: w.bnet.run(v), np.linspace(-1, 1, 15).reshape(5, 3)),
    ("learn_sequence X", lambda w, v: (w.seq.learn_sequence(v, np.ones((5, 2))),
                                       w.seq.predict(v)),
     np.linspace(-1, 1, 15).reshape(5, 3)),
    ("learn_sequence Y", lambda w, v: w.seq.learn_sequence(np.ones((5, 3)), v),
     np.linspace(-1, 1, 10).reshape(5, 2)),
    ("Seq2Seq X_src", lambda w, v: (w.s2s.learn(v, [2, 1]), w.s2s.generate(v, 4)),
     np.linspace(-1, 1, 12).reshape(4, 3)),
]


def exact(v):
    """A bit-exact comparable form of a result."""
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return [exact(e) for e in v]
    return repr(v)


@pytest.mark.parametrize("label, call, value", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_inputs_give_the_plain_inputs_numbers(tmp_path, label, call, value):
    ref = World(tmp_path / "ref")
    expect = call(ref, np.ascontiguousarray(value))
    for kind, v in variants(value).items():
        w = World(tmp_path / kind)
        got = call(w, v)
        assert exact(got) == exact(expect), (label, kind)
        assert w.freeze() == ref.freeze(), (label, kind)
