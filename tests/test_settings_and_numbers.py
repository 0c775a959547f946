"""Settings are read-only; settings that vanish or overflow in the network's dtype are refused;
what sr.save writes sr.load reads (a value load would refuse is refused at save instead).

Issue 14, sections 3 and 4: a writable ``k2`` or ``clip_norm`` that training ignores but
``sr.save`` writes makes a reloaded trainer train differently; ``Adam(eps=1e-50)`` on a float32
network skipped every update; a state overflowed by finite float32 inputs was saved and then
refused by load.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import streamrnn as sr

from conftest import make_net

F32MAX = float(np.finfo(np.float32).max)


# =====================================================================================
# read-only settings
# =====================================================================================

def _objects():
    net = sr.RNN(2, 3, output_size=2, nonlinearity="relu", seed=0)
    return {
        "LSTM": (sr.LSTM(2, 3, output_size=1, seed=0),
                 ["input_size", "hidden_size", "num_layers", "output_size", "dtype", "seed",
                  "bidirectional", "layers", "layers_reverse", "head", "cell"]),
        "RNN": (net, ["nonlinearity", "hidden_size", "dtype"]),
        "OnlineTrainer": (sr.OnlineTrainer(sr.GRU(2, 3, output_size=1, seed=1), k1=2, k2=5),
                          ["net", "loss", "optimizer", "k1", "k2", "clip_value",
                           "clip_norm"]),
        "SequenceTrainer": (sr.SequenceTrainer(sr.GRU(2, 3, output_size=1, seed=1)),
                            ["net", "loss", "optimizer", "clip_value", "clip_norm",
                             "out_size"]),
        "Seq2Seq": (sr.Seq2Seq(sr.GRU(1, 4, seed=0), sr.GRU(2, 4, output_size=2, seed=1),
                               start=[0.5, 1.0]),
                    ["encoder", "decoder", "context", "loss", "start", "optimizer",
                     "clip_value", "clip_norm", "out_size"]),
        "Adam": (sr.Adam(), ["lr", "betas", "eps", "weight_decay"]),
        "SGD": (sr.SGD(0.1), ["lr", "momentum", "nesterov", "weight_decay"]),
        "RMSprop": (sr.RMSprop(), ["lr", "alpha", "eps", "momentum", "weight_decay"]),
    }


@pytest.mark.parametrize("kind", list(_objects()))
def test_every_setting_is_read_only(kind):
    obj, names = _objects()[kind]
    for name in names:
        before = getattr(obj, name)
        # a value of the right kind, so that only read-only-ness can make it raise
        new = 7 if isinstance(before, int) else sr.SGD(0.5) if name == "optimizer" else 0.25
        with pytest.raises(AttributeError, match=rf"{name}.*read-only|read-only.*'{name}'"):
            setattr(obj, name, new)
        with pytest.raises(AttributeError, match="read-only"):
            delattr(obj, name)
        after = getattr(obj, name)
        assert after is before or (isinstance(after, np.ndarray)
                                   and after.tobytes() == before.tobytes())


def test_other_attributes_stay_writable():
    """Only the settings are frozen: users may hang their own attributes on objects."""
    net = sr.LSTM(1, 2)
    tr = sr.OnlineTrainer(net)
    net.note = "mine"
    tr.note = 3
    assert (net.note, tr.note) == ("mine", 3)


def test_parameter_views_cannot_be_rebound_but_can_be_written():
    net = sr.LSTM(2, 3, output_size=1, seed=0)
    layer, head = net.layers[0], net.head
    for obj, name in ((layer, "weight_ih"), (layer, "bias_hh"), (head, "weight"),
                      (head, "bias")):
        with pytest.raises(AttributeError, match=rf"{name}.*cannot be rebound"):
            setattr(obj, name, np.zeros_like(getattr(obj, name)))
    with pytest.raises(TypeError):
        net.layers[0] = net.layers[0]          # a tuple: the list of layers is fixed too
    layer.bias_hh[...] = 0.5                   # writing into the view is the way
    assert (net.state_dict()["bias_hh_l0"] == np.float32(0.5)).all()


def test_seq2seq_start_is_a_read_only_copy():
    start = np.array([0.5, 1.0])
    s2s = sr.Seq2Seq(sr.GRU(1, 4, seed=0), sr.GRU(2, 4, output_size=2, seed=1), start=start)
    start[0] = 9.0                             # the caller's array is not the setting
    assert s2s.start.tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="read-only"):
        s2s.start[0] = 2.0
    assert sr.loads(sr.dumps(s2s)).start.tolist() == [0.5, 1.0]


def test_saved_settings_are_the_ones_training_uses():
    """The original bug: a setting changed after construction was written by save, so the
    reloaded trainer trained differently. Now it cannot change, and a round trip trains
    bit for bit like the original."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2)).astype(np.float32)
    Y = rng.standard_normal((40, 1)).astype(np.float32)
    tr = sr.OnlineTrainer(sr.LSTM(2, 4, output_size=1, seed=3), k1=3, k2=6, clip_norm=0.5)
    tr.learn_many(X[:20], Y[:20])
    with pytest.raises(AttributeError):
        tr.k2 = 64
    twin = sr.loads(sr.dumps(tr))
    assert (twin.k1, twin.k2, twin.clip_norm) == (3, 6, 0.5)
    a = tr.learn_many(X[20:], Y[20:])
    b = twin.learn_many(X[20:], Y[20:])
    assert a.tobytes() == b.tobytes()
    assert tr.net.parameters().tobytes() == twin.net.parameters().tobytes()


# =====================================================================================
# settings that vanish or overflow in the network's dtype
# =====================================================================================

VANISHING = [
    ("optimizer.eps", dict(optimizer=sr.Adam(eps=1e-50))),
    ("optimizer.eps", dict(optimizer=sr.RMSprop(eps=1e-40))),          # subnormal
    ("optimizer.lr", dict(optimizer=sr.SGD(lr=1e-46))),
    ("optimizer.lr", dict(optimizer=sr.Adam(lr=1e39))),
    ("optimizer.momentum", dict(optimizer=sr.SGD(0.1, momentum=1e-50))),
    ("optimizer.momentum", dict(optimizer=sr.RMSprop(momentum=1e40))),
    ("optimizer.weight_decay", dict(optimizer=sr.Adam(weight_decay=1e-45))),
    ("optimizer.weight_decay", dict(optimizer=sr.SGD(0.1, weight_decay=1e39))),
    (r"optimizer.betas\[0\]", dict(optimizer=sr.Adam(betas=(1e-50, 0.999)))),
    (r"optimizer.betas\[1\]", dict(optimizer=sr.Adam(betas=(0.9, 1e-39)))),
    ("optimizer.alpha", dict(optimizer=sr.RMSprop(alpha=1e-45))),
    ("clip_value", dict(clip_value=1e-45)),
    ("clip_value", dict(clip_value=1e39)),
    ("clip_norm", dict(clip_norm=1e-40)),
]


def _trainers(dtype, **kw):
    """Constructors of every trainer kind on networks of ``dtype``."""
    return {
        "OnlineTrainer": lambda: sr.OnlineTrainer(sr.GRU(2, 3, output_size=1, dtype=dtype,
                                                         seed=0), **kw),
        "SequenceTrainer": lambda: sr.SequenceTrainer(sr.GRU(2, 3, output_size=1,
                                                             dtype=dtype, seed=0), **kw),
        "Seq2Seq": lambda: sr.Seq2Seq(sr.GRU(1, 3, dtype=dtype, seed=0),
                                      sr.GRU(2, 3, output_size=2, dtype=dtype, seed=1), **kw),
    }


@pytest.mark.parametrize("kind", ["OnlineTrainer", "SequenceTrainer", "Seq2Seq"])
@pytest.mark.parametrize("name,kw", VANISHING, ids=[f"{n}-{i}" for i, (n, _) in
                                                   enumerate(VANISHING)])
def test_float32_trainers_refuse_settings_that_vanish_or_overflow(kind, name, kw):
    with pytest.raises(ValueError, match=rf"{name}=.*float32.*\[1.18e-38, 3.4e\+38\]"):
        _trainers("float32", **kw)[kind]()


@pytest.mark.parametrize("kind", ["OnlineTrainer", "SequenceTrainer", "Seq2Seq"])
def test_float32_limits_themselves_are_accepted(kind):
    tiny = float(np.finfo(np.float32).tiny)
    for kw in (dict(optimizer=sr.Adam(lr=tiny, eps=tiny, betas=(0.0, tiny))),
               dict(optimizer=sr.SGD(F32MAX, momentum=tiny)), dict(clip_value=F32MAX),
               dict(clip_norm=tiny), dict(optimizer=sr.SGD(0.0))):
        _trainers("float32", **kw)[kind]()


@pytest.mark.parametrize("kind", ["OnlineTrainer", "SequenceTrainer", "Seq2Seq"])
def test_float64_keeps_what_float64_can_hold(kind):
    for kw in (dict(optimizer=sr.Adam(eps=1e-50)), dict(optimizer=sr.SGD(1e39)),
               dict(clip_norm=1e-300)):
        _trainers("float64", **kw)[kind]()
    with pytest.raises(ValueError, match="eps=.*vanishes in float64"):
        _trainers("float64", optimizer=sr.RMSprop(eps=1e-310))[kind]()


def test_what_the_refused_eps_did():
    """Why: with eps=1e-50, float32(eps) == 0 and a zero gradient component gives 0/0, so
    the C core skipped every update. float64 keeps eps and updates."""
    assert np.float32(1e-50) == 0
    net64 = sr.GRU(2, 3, output_size=1, dtype="float64", seed=0)
    net64.layers[0].weight_ih[:, 0] = 0.0       # inputs [0, x]: a zero gradient column
    tr = sr.OnlineTrainer(net64, optimizer=sr.Adam(eps=1e-50), k1=1, k2=2)
    for t in range(5):
        tr.learn_one([0.0, 0.5], [1.0])
    assert tr.updates == 5 and tr.skipped_updates == 0


# =====================================================================================
# non-finite values: save refuses what load would refuse; load reads what save writes
# =====================================================================================

def _overflowing_relu(dtype="float32", output_size=None):
    """An RNN(relu) whose state overflows to inf from one finite (FLT_MAX) input."""
    net = sr.RNN(1, 2, output_size=output_size, nonlinearity="relu", dtype=dtype, seed=1)
    net.layers[0].weight_ih[...] = 10.0
    net.layers[0].bias_ih[...] = 0.0
    net.layers[0].bias_hh[...] = 0.0
    return net


def _big(dtype):
    return np.array([np.finfo(dtype).max], dtype=dtype)


def _refused(obj, what):
    with pytest.raises(ValueError, match=rf"cannot save .*'(\w+\.)?{what}'.*NaN or inf"):
        sr.dumps(obj)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_overflowed_state_is_refused_at_save_not_at_load(dtype, tmp_path):
    net = _overflowing_relu(dtype)
    s = net.new_state()
    net.step(_big(dtype), s)
    assert np.isinf(s.h).any()           # a finite input made the state non-finite
    _refused(s, "h")
    path = tmp_path / "s.srnn"
    with pytest.raises(ValueError, match="nothing was written"):
        sr.save(s, path)
    assert not path.exists() and not list(tmp_path.iterdir())
    s.reset()
    assert sr.loads(sr.dumps(s)).h.tobytes() == s.h.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_overflowed_batch_is_refused_at_save(dtype):
    net = _overflowing_relu(dtype)
    b = net.new_states(3)
    net.step_many(_big(dtype)[None, :], b, index=[1])
    assert np.isinf(b.h[1]).any() and np.isfinite(b.h[[0, 2]]).all()
    _refused(b, "h")
    b.reset()
    sr.loads(sr.dumps(b))


def test_non_finite_lstm_state_c_is_refused():
    s = sr.LSTM(1, 2, seed=0).new_state()
    s.c[0, 1] = np.inf                     # the public state view allows it
    _refused(s, "c")
    b = sr.LSTM(1, 2, seed=0).new_states(2)
    b.c[1, 0, 0] = np.nan
    _refused(b, "c")


def test_trainer_with_overflowed_state_is_refused_and_loads_after_reset():
    tr = sr.OnlineTrainer(_overflowing_relu(output_size=1), k1=1, k2=3)
    tr.learn_one([0.5], [0.1])
    tr.learn_one(_big("float32"), [0.1])
    assert np.isinf(tr.state.h).any() and tr.skipped_updates >= 1
    _refused(tr, "trainer.h")
    tr.reset()                             # the ring may keep the overflow: loads as it is
    twin = sr.loads(sr.dumps(tr))
    assert twin._snapshot()["ring"].tobytes() == tr._snapshot()["ring"].tobytes()


@pytest.mark.parametrize("kind", ["net", "OnlineTrainer", "SequenceTrainer", "Seq2Seq",
                                  "Forecaster"])
def test_weights_made_non_finite_through_the_views_are_refused(kind):
    net = sr.GRU(1, 3, output_size=1, seed=0)
    objs = {"net": lambda: net, "OnlineTrainer": lambda: sr.OnlineTrainer(net),
            "SequenceTrainer": lambda: sr.SequenceTrainer(net),
            "Seq2Seq": lambda: sr.Seq2Seq(sr.GRU(1, 3, seed=0), net)}
    if kind == "Forecaster":
        obj = sr.Forecaster(hidden_size=3, seed=0)
        for t in range(5):
            obj.learn_one(float(t))
        net = obj.net
    else:
        obj = objs[kind]()
    net.layers[0].weight_hh[0, 0] = np.nan
    _refused(obj, "parameters")


@pytest.mark.parametrize("kind", ["OnlineTrainer", "SequenceTrainer", "Seq2Seq"])
def test_inf_loss_of_a_skipped_update_round_trips(kind, tmp_path):
    """A skipped update records an infinite loss: a legal report that save writes, so load
    must read it (the window trainers' loader refused it)."""
    kw = dict(dtype="float64")
    if kind == "OnlineTrainer":
        tr = sr.OnlineTrainer(sr.GRU(1, 3, output_size=1, seed=0, **kw), k1=1, k2=2)
        tr.learn_one([1.0], [1e300])
    elif kind == "SequenceTrainer":
        tr = sr.SequenceTrainer(sr.GRU(1, 3, output_size=1, seed=0, **kw))
        tr.learn_sequence(np.ones((3, 1)), np.full((3, 1), 1e300))
    else:
        tr = sr.Seq2Seq(sr.GRU(1, 3, seed=0, **kw), sr.GRU(1, 3, output_size=1, seed=1, **kw))
        tr.learn(np.ones((3, 1)), np.full((2, 1), 1e300))
    assert tr.skipped_updates == 1 and np.isinf(tr.last_loss)
    path = tmp_path / "t.srnn"
    sr.save(tr, path)
    twin = sr.load(path)
    assert np.isinf(twin.last_loss) and twin.skipped_updates == 1
    assert sr.dumps(twin) == sr.dumps(tr)


def test_seq2seq_refuses_targets_and_start_that_overflow_the_decoder_inputs():
    """Found on the way: mse targets are the decoder's teacher-forcing inputs; 1e300 became
    inf in float32 and failed inside the update with an error naming "X"."""
    s2s = sr.Seq2Seq(sr.GRU(1, 3, seed=0), sr.GRU(1, 3, output_size=1, seed=1))
    before = (s2s.encoder.parameters().tobytes(), s2s.decoder.parameters().tobytes())
    with pytest.raises(ValueError, match="Y_tgt must hold values of magnitude <= 3.403e"):
        s2s.learn(np.ones((3, 1), np.float32), np.full((2, 1), 1e300))
    assert (s2s.encoder.parameters().tobytes(), s2s.decoder.parameters().tobytes()) == before
    assert s2s.updates == 0 and s2s.skipped_updates == 0
    with pytest.raises(ValueError, match="start must hold values of magnitude"):
        sr.Seq2Seq(sr.GRU(1, 3, seed=0), sr.GRU(1, 3, output_size=1, seed=1), start=[1e39])


def test_pickle_is_not_a_back_door():
    """Pickles rebuild through the constructors, so settings stay checked there too."""
    tr = sr.OnlineTrainer(sr.GRU(1, 3, output_size=1, seed=0), k1=2, k2=4)
    twin = pickle.loads(pickle.dumps(tr))
    with pytest.raises(AttributeError):
        twin.k1 = 1
    assert make_net("gru", 1, 2).hidden_size == 2
