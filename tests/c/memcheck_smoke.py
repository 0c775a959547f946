"""A tiny tour of every C entry point, for ``valgrind --tool=memcheck`` (see .ci/valgrind):
steps, runs (several chunks), many-stream steps with and without an index, a trainer of
every loss and optimizer (learn_one, learn_many, advance/observe, predict_one), a
forecaster, save and load, and bad input that the C core refuses."""
import os
import sys
import tempfile

from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # this checkout's streamrnn
import streamrnn as sr  # noqa: E402

assert Path(sr.__file__).resolve().parents[1] == Path(__file__).resolve().parents[2], sr.__file__

rng = np.random.default_rng(0)
for cls, kw in ((sr.LSTM, {}), (sr.GRU, {}), (sr.RNN, {"nonlinearity": "relu"})):
    for dtype in ("float32", "float64"):
        net = cls(3, 5, 2, output_size=2, dtype=dtype, seed=1, **kw)
        X = rng.standard_normal((40, 3)).astype(dtype)
        s = net.new_state()
        net.step(X[0], s)
        net.run(X, s)
        b = net.new_states(4)
        net.step_many(X[:4], b)
        net.step_many(X[:2], b, index=[3, 1])
        for loss, opt in (("mse", sr.Adam(1e-3)), ("cross_entropy", sr.SGD(0.1, momentum=0.9)),
                          ("mse", sr.RMSprop(1e-3))):
            tr = sr.OnlineTrainer(net, loss=loss, optimizer=opt, k1=3, k2=5, clip_norm=1.0)
            Y = (X[:, :2] if loss == "mse" else rng.integers(0, 2, 40))
            tr.learn_many(X, Y)
            tr.learn_one(X[0], Y[0])
            tr.advance(X[1])
            tr.observe(Y[1])
            tr.predict_one(X[2])
        try:
            net.run(np.full((2, 3), np.nan, dtype=dtype), s)
        except ValueError:
            pass
# long enough for net.run to take several chunks
net = sr.GRU(2, 3, output_size=1, dtype="float64", seed=2)
net.run(rng.standard_normal((4_200_000 // net.parameters().size + 10, 2)), net.new_state())
# issue 14's memory-safety probes (tests/test_memory_safety.py), under memcheck: resizes
# refused, aliasing out= refused, an index aliasing the states (gemm path), a crafted ring
# tag refused, uninitialised objects, NaN states through the float32 activations
net = sr.LSTM(3, 6, 2, output_size=2, dtype="float32", seed=3)
s, b = net.new_state(), net.new_states(24)
for a in (s.h, s.c, b.h, b.c, net.parameters()):
    try:
        a.resize((1,), refcheck=False)
        raise AssertionError("resized")
    except ValueError:
        pass
ibuf = np.zeros(8, np.int64)
try:
    net.step_many(np.ones((4, 3), np.float32), b, index=ibuf[:4] + np.arange(4),
                  out=ibuf[:4].view(np.float32).reshape(4, 2))
except ValueError:
    pass
iv = b.h.reshape(-1).view(np.int64)[:12]
iv[:] = np.arange(12)[::-1]
net.step_many(np.ones((12, 3), np.float32), b, index=iv)
s.h[0, 0] = np.nan
s.c[1, 1] = np.nan
net.step(np.ones(3, np.float32), s)
tr = sr.OnlineTrainer(sr.GRU(2, 3, output_size=3, seed=0), loss="cross_entropy", k1=1, k2=3)
tr.learn_one(np.ones(2, np.float32), 1)
snap = tr._snapshot()
snap["tags"][:] = 10**9
try:
    tr._restore(snap)
    raise AssertionError("restored")
except ValueError:
    pass
tr.learn_one(np.ones(2, np.float32), 2)
for cls in (sr.State, sr.StateBatch):
    try:
        cls.__new__(cls).reset()
    except RuntimeError:
        pass
f = sr.Forecaster(hidden_size=4, seed=0)
f.learn_many(list(np.sin(0.3 * np.arange(60))))
f.forecast(5)
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "f.srnn")
    sr.save(f, p)
    sr.load(p).forecast(2)
print("memcheck smoke: ok", file=sys.stderr)
sys.stderr.flush()
sys.stdout.flush()
# skip interpreter finalisation: its garbage collection of type objects gives memcheck
# reports inside CPython itself (uninitialised values in clear_slots), not ours
os._exit(0)
