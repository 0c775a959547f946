"""Nothing changes after an error, at every public entry point of the trainers, networks,
optimizers and sr.save / sr.load (issue 14, section 3).

Each case warms an object up (so that state, ring, moments and counters are non-trivial),
feeds one bad input (wrong shape, dtype or type, NaN/inf where a finite value is needed, a
value out of range, a call in the wrong state), expects TypeError/ValueError naming the
argument, and then compares every weight, state, ring, tag, optimizer moment and counter
byte for byte with a snapshot taken before (conftest.snapshot / assert_unchanged). Bad
values sit in the LAST row or item of multi-row inputs, so an entry point that applies the
good rows before finding the bad one fails here.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import streamrnn as sr

from conftest import assert_unchanged, snapshot

DTYPES = ("float32", "float64")


def arg(name):
    return rf"(?<!\w){re.escape(name)}(?!\w)"


def check(exc, name, fn, *objs):
    before = snapshot(*objs)
    with pytest.raises(exc, match=arg(name) if name else None):
        fn()
    assert_unchanged(before, *objs)


def run_cases(cases, *objs):
    for label, exc, name, fn in cases:
        try:
            check(exc, name, fn, *objs)
        except BaseException as e:  # name the failing case
            raise AssertionError(f"case {label!r}: {e}") from e


# =====================================================================================
# OnlineTrainer
# =====================================================================================

def warm_online(dtype, loss="mse", opt=None, k1=3, k2=5):
    O = 3
    net = sr.LSTM(2, 4, output_size=O, dtype=dtype, seed=7)
    tr = sr.OnlineTrainer(net, loss=loss, optimizer=opt or sr.Adam(lr=1e-2), k1=k1, k2=k2,
                          clip_norm=5.0)
    rng = np.random.default_rng(0)
    for t in range(11):          # not a multiple of k1: a partial update window is pending
        x = rng.standard_normal(2).astype(dtype)
        y = rng.standard_normal(O).astype(dtype) if loss == "mse" else int(t % O)
        tr.learn_one(x, y)
    assert tr.updates > 0 and np.any(tr._snapshot()["m1"] != 0)
    return tr


def bad_rows(dtype, T, D, last):
    """(T, D) good rows with the last one replaced by ``last``."""
    X = np.full((T, D), 0.25, dtype=dtype)
    X[-1] = last
    return X


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_online_trainer_mse(dtype):
    tr = warm_online(dtype)
    od = np.float64 if dtype == "float32" else np.float32
    good_x = np.zeros(2, dtype)
    good_y = np.zeros(3, dtype)
    T = 6
    Yok = np.zeros((T, 3), dtype)
    Yinf = Yok.copy()
    Yinf[-1, 1] = np.inf
    cases = [
        ("x NaN", ValueError, "x", lambda: tr.learn_one(np.array([0.0, np.nan], dtype),
                                                          good_y)),
        ("x inf", ValueError, "x", lambda: tr.learn_one([np.inf, 0.0], good_y)),
        ("x shape", ValueError, "x", lambda: tr.learn_one(np.zeros(3, dtype), good_y)),
        ("x dtype", TypeError, "x", lambda: tr.learn_one(np.zeros(2, od), good_y)),
        ("x str", TypeError, "x", lambda: tr.learn_one("ab", good_y)),
        ("y shape", ValueError, "y", lambda: tr.learn_one(good_x, np.zeros(2, dtype))),
        ("y inf", ValueError, "y", lambda: tr.learn_one(good_x, [0.0, np.inf, 0.0])),
        ("y dtype", TypeError, "y", lambda: tr.learn_one(good_x, np.zeros(3, od))),
        ("y str", TypeError, "y", lambda: tr.learn_one(good_x, "abc")),
        ("X NaN last row", ValueError, "X",
         lambda: tr.learn_many(bad_rows(dtype, T, 2, np.nan), Yok)),
        ("X inf last row", ValueError, "X",
         lambda: tr.learn_many(bad_rows(dtype, T, 2, -np.inf), Yok)),
        ("X 3-D", ValueError, "X", lambda: tr.learn_many(np.zeros((T, 2, 1), dtype), Yok)),
        ("X dtype", TypeError, "X", lambda: tr.learn_many(np.zeros((T, 2), od), Yok)),
        ("Y inf last row", ValueError, "y",
         lambda: tr.learn_many(np.zeros((T, 2), dtype), Yinf)),
        ("Y rows", ValueError, "Y",
         lambda: tr.learn_many(np.zeros((T, 2), dtype), Yok[:-1])),
        ("advance x NaN", ValueError, "x", lambda: tr.advance([np.nan, 0.0])),
        ("advance x shape", ValueError, "x", lambda: tr.advance(np.zeros(5, dtype))),
        ("observe before advance", ValueError, "advance", lambda: tr.observe(good_y)),
        ("predict_one x", ValueError, "x", lambda: tr.predict_one([np.nan, 1.0])),
    ]
    if dtype == "float32":
        cases += [("x overflows float32", ValueError, "x",
                   lambda: tr.learn_one([1e39, 0.0], good_y)),
                  ("X overflows float32 in last row", ValueError, "X",
                   lambda: tr.learn_many([[0.0, 0.0]] * (T - 1) + [[0.0, 1e39]], Yok))]
    run_cases(cases, tr)
    # a step waiting for its target: a bad target keeps it waiting, nothing else changes
    tr.advance(good_x)
    run_cases([("observe y inf", ValueError, "y", lambda: tr.observe([np.inf, 0, 0])),
               ("observe y shape", ValueError, "y", lambda: tr.observe([0.0])),
               ("observe y str", TypeError, "y", lambda: tr.observe("abc"))], tr)
    tr.observe(good_y)                    # and the good one is still accepted


@pytest.mark.parametrize("dtype", DTYPES)
def test_online_trainer_cross_entropy(dtype):
    tr = warm_online(dtype, loss="cross_entropy", opt=sr.SGD(0.1, momentum=0.9))
    x = np.zeros(2, dtype)
    T = 5
    Ybad = np.zeros(T, np.int64)
    Ybad[-1] = 3
    cases = [
        ("class too large", ValueError, "y", lambda: tr.learn_one(x, 3)),
        ("class negative", ValueError, "y", lambda: tr.learn_one(x, -2)),
        ("class float", TypeError, "y", lambda: tr.learn_one(x, 1.5)),
        ("class bool", TypeError, "y", lambda: tr.learn_one(x, True)),
        ("class array", TypeError, "y", lambda: tr.learn_one(x, np.zeros(3))),
        ("Y last class too large", ValueError, "Y",
         lambda: tr.learn_many(np.zeros((T, 2), dtype), Ybad)),
        ("Y float classes", TypeError, "Y",
         lambda: tr.learn_many(np.zeros((T, 2), dtype), np.zeros(T))),
        ("Y shape", ValueError, "Y",
         lambda: tr.learn_many(np.zeros((T, 2), dtype), np.zeros(T + 1, np.int64))),
        ("X NaN last row", ValueError, "X",
         lambda: tr.learn_many(bad_rows(dtype, T, 2, np.nan), np.zeros(T, np.int64))),
    ]
    run_cases(cases, tr)


def test_online_trainer_long_learn_many_validates_every_chunk_first():
    """learn_many runs its C loop in chunks (signals between them): a bad last row far
    beyond the first chunk must still change nothing."""
    tr = warm_online("float64")
    chunk = 4194304 // (3 * tr.net.parameters().shape[0])   # _core.pyx: _CHUNK_WORK // 3P
    T = 2 * chunk + 3
    X = np.zeros((T, 2))
    Y = np.zeros((T, 3))
    for label, Xb, Yb, name in (("X", bad_rows("float64", T, 2, np.nan), Y, "X"),
                                ("Y", X, np.vstack([Y[:-1], [[0, np.inf, 0]]]), "y")):
        try:
            check(ValueError, name, lambda: tr.learn_many(Xb, Yb), tr)
        except BaseException as e:
            raise AssertionError(f"case {label}: {e}") from e


# =====================================================================================
# SequenceTrainer and Seq2Seq
# =====================================================================================

def warm_seq(dtype, loss="mse"):
    net = sr.GRU(2, 3, output_size=2, bidirectional=True, dtype=dtype, seed=3)
    tr = sr.SequenceTrainer(net, loss=loss, optimizer=sr.RMSprop(1e-2, momentum=0.5),
                            clip_value=1.0)
    X = np.linspace(-1, 1, 10, dtype=dtype).reshape(5, 2)
    Y = np.ones((5, 2), dtype) if loss == "mse" else np.array([0, 1, -1, 1, 0])
    tr.learn_sequence(X, Y)
    tr.learn_batch([X, X[:3]], [Y, Y[:3]])
    assert tr.updates == 2
    return tr, X, Y


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_trainer(dtype):
    tr, X, Y = warm_seq(dtype)
    od = np.float64 if dtype == "float32" else np.float32
    Xnan = X.copy()
    Xnan[-1, -1] = np.nan
    Yinf = Y.copy()
    Yinf[-1, 0] = np.inf
    cases = [
        ("X NaN", ValueError, "X", lambda: tr.learn_sequence(Xnan, Y)),
        ("X dtype", TypeError, "X", lambda: tr.learn_sequence(X.astype(od), Y)),
        ("X empty", ValueError, "X", lambda: tr.learn_sequence(X[:0], Y[:0])),
        ("X columns", ValueError, "X", lambda: tr.learn_sequence(X[:, :1], Y)),
        ("Y inf", ValueError, "Y", lambda: tr.learn_sequence(X, Yinf)),
        ("Y shape", ValueError, "Y", lambda: tr.learn_sequence(X, Y[:-1])),
        ("Y None", TypeError, "Y", lambda: tr.learn_sequence(X, None)),
        ("Y bool", TypeError, "Y", lambda: tr.learn_sequence(X, Y > 0)),
        ("batch: last window bad", ValueError, "windows[2]",
         lambda: tr.learn_batch([X, X, Xnan], [Y, Y, Y])),
        ("batch: last target bad", ValueError, "targets[1]",
         lambda: tr.learn_batch([X, X], [Y, Yinf])),
        ("batch: lengths", ValueError, "targets", lambda: tr.learn_batch([X, X], [Y])),
        ("batch: empty", ValueError, "windows", lambda: tr.learn_batch([], [])),
        ("fit: last window bad", ValueError, "windows[3]",
         lambda: tr.fit([X] * 3 + [Xnan], [Y] * 4, epochs=2, seed=0)),
        ("fit: epochs", ValueError, "epochs", lambda: tr.fit([X], [Y], epochs=0)),
        ("fit: batch_size", TypeError, "batch_size",
         lambda: tr.fit([X], [Y], batch_size=1.5)),
        ("fit: shuffle", TypeError, "shuffle", lambda: tr.fit([X], [Y], shuffle="yes")),
        ("predict X", ValueError, "X", lambda: tr.predict(Xnan)),
        ("predict many_to_one", TypeError, "many_to_one",
         lambda: tr.predict(X, many_to_one=1)),
    ]
    run_cases(cases, tr)


def test_sequence_trainer_cross_entropy():
    tr, X, Y = warm_seq("float64", loss="cross_entropy")
    bad = Y.copy()
    bad[-1] = 2
    run_cases([
        ("class out of range", ValueError, "Y", lambda: tr.learn_sequence(X, bad)),
        ("float classes", TypeError, "Y", lambda: tr.learn_sequence(X, Y.astype(float))),
        ("batch: last classes", ValueError, "targets[1]",
         lambda: tr.learn_batch([X, X], [Y, bad])),
    ], tr)


def warm_s2s(dtype, loss="mse"):
    O = 3
    enc = sr.LSTM(2, 4, dtype=dtype, seed=1)
    dec = sr.LSTM(O, 4, output_size=O, dtype=dtype, seed=2)
    s2s = sr.Seq2Seq(enc, dec, loss=loss, start=0 if loss == "cross_entropy" else None,
                     optimizer=sr.Adam(1e-2), clip_norm=1.0)
    X = np.linspace(-1, 1, 8, dtype=dtype).reshape(4, 2)
    Y = np.full((3, O), 0.5, dtype) if loss == "mse" else np.array([1, 2, 0])
    s2s.learn(X, Y)
    s2s.learn_batch([X, X[:2]], [Y, Y[:2]])
    assert s2s.updates == 2
    return s2s, X, Y


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_seq2seq(dtype):
    s2s, X, Y = warm_s2s(dtype)
    Xnan = X.copy()
    Xnan[-1, 0] = np.nan
    Ynan = Y.copy()
    Ynan[-1, 0] = np.nan                      # every decoder step needs a target
    cases = [
        ("X_src NaN", ValueError, "X_src", lambda: s2s.learn(Xnan, Y)),
        ("X_src columns", ValueError, "X_src", lambda: s2s.learn(X[:, :1], Y)),
        ("Y_tgt NaN", ValueError, "Y_tgt", lambda: s2s.learn(X, Ynan)),
        ("Y_tgt shape", ValueError, "Y_tgt", lambda: s2s.learn(X, Y[:, :2])),
        ("Y_tgt empty", ValueError, "Y_tgt", lambda: s2s.learn(X, Y[:0])),
        ("batch: last src", ValueError, "src[1]", lambda: s2s.learn_batch([X, Xnan], [Y, Y])),
        ("batch: last tgt", ValueError, "tgt[2]",
         lambda: s2s.learn_batch([X] * 3, [Y, Y, Ynan])),
        ("fit: last pair", ValueError, "tgt[3]",
         lambda: s2s.fit([X] * 4, [Y] * 3 + [Ynan], epochs=2, seed=0)),
        ("fit: epochs", TypeError, "epochs", lambda: s2s.fit([X], [Y], epochs=None)),
        ("generate X_src", ValueError, "X_src", lambda: s2s.generate(Xnan, 3)),
        ("generate max_len", ValueError, "max_len", lambda: s2s.generate(X, -1)),
        ("generate stop", TypeError, "stop", lambda: s2s.generate(X, 3, stop=2)),
    ]
    if dtype == "float32":
        cases.append(("Y_tgt overflows the decoder's float32 inputs", ValueError, "Y_tgt",
                      lambda: s2s.learn(X, np.full((3, 3), 1e39))))
    run_cases(cases, s2s)


def test_seq2seq_cross_entropy():
    s2s, X, Y = warm_s2s("float64", loss="cross_entropy")
    bad = Y.copy()
    bad[-1] = -1                              # no "missing" class in seq2seq targets
    run_cases([
        ("class -1", ValueError, "Y_tgt", lambda: s2s.learn(X, bad)),
        ("class too large", ValueError, "Y_tgt", lambda: s2s.learn(X, [1, 3])),
        ("generate stop", TypeError, "stop", lambda: s2s.generate(X, 3, stop=lambda y: 1)),
    ], s2s)


# =====================================================================================
# networks and optimizers
# =====================================================================================

def test_network_load_state_dict_last_key_bad():
    net = sr.GRU(2, 3, num_layers=2, output_size=1, seed=0)
    s = net.new_state()
    d = net.state_dict()
    keys = list(d)
    bad = {k: v * 2 for k, v in d.items()}
    bad[keys[-1]] = np.full_like(d[keys[-1]], np.nan)
    check(ValueError, keys[-1], lambda: net.load_state_dict(bad), net, s)
    run_cases([("new_states n", ValueError, "n", lambda: net.new_states(0)),
               ("run last row", ValueError, "X",
                lambda: net.run(bad_rows("float32", 4, 2, np.inf), s))], net, s)


def test_optimizers_are_unchanged_by_refused_writes():
    for opt in (sr.SGD(0.1, momentum=0.5), sr.Adam(), sr.RMSprop()):
        before = repr(opt)
        with pytest.raises(AttributeError):
            opt.lr = 1.0
        assert repr(opt) == before
    with pytest.raises(ValueError, match=arg("betas[1]")):
        sr.Adam(betas=(0.9, 1.0))


# =====================================================================================
# sr.save / sr.load
# =====================================================================================

def test_save_errors_change_neither_the_object_nor_the_file(tmp_path):
    tr = warm_online("float32")
    path = tmp_path / "tr.srnn"
    sr.save(tr, path)
    on_disk = path.read_bytes()
    cases = [
        ("metadata not a dict", TypeError, "metadata",
         lambda: sr.save(tr, path, metadata=[1])),
        ("metadata not JSON", TypeError, "metadata",
         lambda: sr.save(tr, path, metadata={"a": object()})),
        ("not savable", TypeError, None, lambda: sr.save(object(), path)),
        ("missing directory", OSError, None,
         lambda: sr.save(tr, tmp_path / "no" / "such" / "dir.srnn")),
    ]
    run_cases(cases, tr)
    tr.net.head.bias[0] = np.inf            # made unsavable through the public views
    check(ValueError, "net.parameters", lambda: sr.save(tr, path), tr)
    assert path.read_bytes() == on_disk      # the previous checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tr.srnn"]


def test_load_errors_leave_the_file_and_the_loaded_objects_alone(tmp_path):
    tr = warm_online("float64")
    path = tmp_path / "tr.srnn"
    sr.save(tr, path)
    data = path.read_bytes()
    before = snapshot(tr)
    with pytest.raises(TypeError, match="expect"):
        sr.load(path, sr.SequenceTrainer)
    with pytest.raises(sr.FileFormatError):
        sr.loads(data[:-3])
    assert path.read_bytes() == data
    assert_unchanged(before, tr)
    assert sr.dumps(sr.load(path)) == data
