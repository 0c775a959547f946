"""sr.save / sr.load of the window trainers (SequenceTrainer, Seq2Seq): a saved trainer
resumes bit-for-bit where the original goes on, and hostile files are refused cleanly."""
from __future__ import annotations

import json

import numpy as np
import pytest

import streamrnn as sr
from _hostile_files import join, split


def _windows(rng, n, T, D):
    return [rng.standard_normal((T, D)) for _ in range(n)]


def _seq_trainer(opt):
    net = sr.LSTM(3, 5, num_layers=2, output_size=2, bidirectional=True, dtype="float64",
                  seed=1)
    return sr.SequenceTrainer(net, loss="mse", optimizer=opt, clip_norm=2.0)


def _s2s(opt):
    return sr.Seq2Seq(sr.GRU(2, 6, seed=2, dtype="float64"),
                      sr.GRU(4, 6, output_size=4, seed=3, dtype="float64"),
                      loss="cross_entropy", start=0, optimizer=opt, clip_value=1.0)


OPTS = [lambda: sr.Adam(1e-2), lambda: sr.RMSprop(1e-2, momentum=0.9),
        lambda: sr.SGD(0.05, momentum=0.5, nesterov=True)]


@pytest.mark.parametrize("make_opt", OPTS)
def test_sequence_trainer_resumes_bit_for_bit(tmp_path, make_opt):
    rng = np.random.default_rng(0)
    X = _windows(rng, 6, 7, 3)
    Y = [rng.standard_normal((7, 2)) for _ in range(6)]
    a = _seq_trainer(make_opt())
    a.fit(X[:3], Y[:3], epochs=2, seed=0)
    sr.save(a, tmp_path / "t.srnn")
    b = sr.load(tmp_path / "t.srnn", sr.SequenceTrainer)
    assert (b.updates, b.skipped_updates) == (a.updates, a.skipped_updates)
    assert b.last_loss == a.last_loss and b.last_grad_norm == a.last_grad_norm
    assert b.net.bidirectional and b.clip_norm == 2.0 and type(b.optimizer) is type(a.optimizer)
    for x, y in zip(X[3:], Y[3:]):
        assert a.learn_sequence(x, y) == b.learn_sequence(x, y)
    assert np.array_equal(a.net.parameters(), b.net.parameters())


@pytest.mark.parametrize("make_opt", OPTS)
def test_seq2seq_resumes_bit_for_bit(make_opt):
    rng = np.random.default_rng(1)
    src = _windows(rng, 6, 5, 2)
    tgt = [rng.integers(0, 4, size=int(rng.integers(2, 6))) for _ in range(6)]
    a = _s2s(make_opt())
    a.fit(src[:3], tgt[:3], epochs=2, seed=0)
    b = sr.loads(sr.dumps(a), sr.Seq2Seq)
    assert (b.context, b.loss, b.start, b.clip_value) == ("init_state", "cross_entropy", 0, 1.0)
    assert b.updates == a.updates
    for x, y in zip(src[3:], tgt[3:]):
        assert a.learn(x, y) == b.learn(x, y)
    assert np.array_equal(a.encoder.parameters(), b.encoder.parameters())
    assert np.array_equal(a.decoder.parameters(), b.decoder.parameters())
    assert np.array_equal(a.generate(src[0], 5), b.generate(src[0], 5))


def test_seq2seq_mse_start_vector_round_trips():
    s = sr.Seq2Seq(sr.LSTM(1, 4, seed=0), sr.LSTM(2, 4, output_size=2, seed=1), loss="mse",
                   start=[0.5, -1.0])
    t = sr.loads(sr.dumps(s))
    assert isinstance(t, sr.Seq2Seq) and np.array_equal(t.start, [0.5, -1.0])


def test_hostile_window_trainer_files_are_refused(tmp_path):
    raw = sr.dumps(_seq_trainer(sr.Adam(1e-2)))
    bad = {
        "loss": lambda h: h["meta"]["trainer"].update(loss="hinge"),
        "clip": lambda h: h["meta"]["trainer"].update(clip_norm=-1),
        "optimizer": lambda h: h["meta"]["trainer"].update(optimizer={"kind": "lbfgs"}),
        "net": lambda h: h["meta"].pop("net"),
        "m2 shape": lambda h: h["arrays"]["trainer.m2"].update(shape=[3]),
        "counters": lambda h: h["arrays"]["trainer.counters"].update(shape=[2]),
        "bidirectional flag": lambda h: h["meta"]["net"].update(bidirectional=False),
    }
    for label, fn in bad.items():
        header, body = split(raw)
        fn(header)
        with pytest.raises(sr.FileFormatError):
            sr.loads(join(header, body))
    # truncation anywhere
    for k in range(0, len(raw), max(1, len(raw) // 200)):
        with pytest.raises(sr.FileFormatError):
            sr.loads(raw[:k])
    with pytest.raises(TypeError, match="Seq2Seq"):
        sr.loads(raw, sr.Seq2Seq)
