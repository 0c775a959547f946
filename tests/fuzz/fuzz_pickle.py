"""atheris harness for the rebuild paths of pickles and copies (coverage-guided; needs
``pip install atheris``).

A data-only pickle can call streamrnn's rebuild functions with any arrays and numbers: the
fuzzer builds the arguments of ``_core._make_state``, ``_core._make_batch``, a trainer
snapshot for ``OnlineTrainer._restore`` and an updater snapshot for
``SequenceTrainer._upd._restore`` from its bytes (sizes, dtypes, shapes, counters, ring
tags, NaN). Any exception other than TypeError/ValueError (or MemoryError for a batch too
large to allocate) from a rebuild, or any exception from using a rebuilt object, is a crash
(and so, of course, is a crash).

Run::

    python tests/fuzz/fuzz_pickle.py -max_total_time=60 -print_final_stats=1
    python tests/fuzz/fuzz_pickle.py --random 2000   # without atheris: random bytes
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # this checkout's streamrnn

try:
    import atheris
except ImportError:  # the --random mode needs no atheris
    atheris = None

if atheris is not None and "--random" not in sys.argv:
    with atheris.instrument_imports(include=["streamrnn"]):
        import streamrnn as sr
else:
    import streamrnn as sr
from streamrnn import _core  # noqa: E402

INTS = [-2**63, -2**31, -2, -1, 0, 1, 2, 3, 4, 5, 7, 2**31 - 1, 2**31, 2**62, 2**63 - 1, 2**64]
ODD = [0.5, float("nan"), float("inf"), True, None, "1", [1], np.int64(2), np.uint64(2**63)]
DTYPES = [np.float32, np.float64, np.int64, np.int32, np.uint8, object]


class _Bytes:
    """Choices drawn from a byte string (atheris's FuzzedDataProvider, or random bytes)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, seq):
        return seq[self.byte() % len(seq)]

    def value(self):
        return self.pick(INTS + ODD) if self.byte() % 4 == 0 else self.byte() % 6

    def array(self, shape):
        """An array near `shape`: sometimes another shape or dtype, one element odd."""
        k = self.byte() % 5
        if k == 1 and shape:
            shape = (max(0, shape[0] + self.pick([-1, 1, 2])),) + tuple(shape[1:])
        elif k == 2:
            shape = tuple(shape[::-1]) if len(shape) > 1 else shape + (1,)
        dt = self.pick(DTYPES) if k == 3 else np.float64
        a = np.zeros(shape, dtype=dt)
        if a.size and dt is not object:
            v = self.pick([10**9, -7, 3, -1, 1, 2**40] + (
                [np.nan, np.inf] if np.dtype(dt).kind == "f" else []))
            try:
                a.reshape(-1)[self.byte() % a.size] = v
            except (OverflowError, ValueError):   # e.g. -1 into uint8: keep the zeros
                pass
        return a


def _use_state(s) -> None:
    net = {"lstm": sr.LSTM, "gru": sr.GRU, "rnn_tanh": sr.RNN, "rnn_relu": sr.RNN}
    kw = {"nonlinearity": "relu"} if s.cell == "rnn_relu" else {}
    n = net[s.cell](2, s.hidden_size, s.num_layers, dtype=s.dtype, **kw)
    if isinstance(s, _core.StateBatch):
        n.step_many(np.ones((len(s), 2), s.dtype), s)
        n.step_many(np.ones((1, 2), s.dtype), s, index=[len(s) - 1])
        s[0].copy()
    else:
        n.step(np.ones(2, s.dtype), s)
    s.reset()
    s.copy()


def one_input(data: bytes) -> None:
    b = _Bytes(data)
    what = b.byte() % 4
    if what in (0, 1):
        cell = b.pick(["lstm", "gru", "rnn_tanh", "rnn_relu", "x", None])
        L, H = b.value(), b.value()
        dtype = b.pick(["float32", "float64", "int8", None])
        def near(v):
            return int(v) if type(v) is int and 0 < v < 6 else 1
        shape = ((b.byte() % 5,) if what == 1 else ()) + (near(L), near(H))
        h = b.array(shape) if b.byte() % 2 else None
        c = b.array(shape) if b.byte() % 2 else None
        try:
            if what == 0:
                s = _core._make_state(cell, L, H, dtype, h, c)
            else:
                s = _core._make_batch(cell, L, H, dtype, b.value(), h, c)
        except (TypeError, ValueError):
            return
        except MemoryError:
            # a batch of up to 2**31 - 1 zero streams, as net.new_states(n) could ask for:
            # refused cleanly when the memory is not there (nothing was built)
            return
        _use_state(s)
        return
    net = sr.GRU(2, 3, int(b.byte() % 2) + 1, output_size=3, dtype="float64", seed=0)
    if what == 2:
        loss = b.pick(["mse", "cross_entropy"])
        k1 = b.byte() % 3 + 1
        tr = sr.OnlineTrainer(net, loss=loss, k1=k1, k2=k1 + b.byte() % 3)
        for _ in range(b.byte() % 6):
            tr.learn_one(np.ones(2), 1 if loss == "cross_entropy" else np.ones(3))
        snap = tr._snapshot()
        for _ in range(b.byte() % 4 + 1):
            key = b.pick(["counters", "h", "c", "ring", "tags", "m1", "m2"])
            if key == "counters":
                snap["counters"][b.pick(sorted(snap["counters"]))] = b.value()
            else:
                ref = snap[key]
                snap[key] = b.array(ref.shape if ref is not None else (1, 3))
                if key == "tags" and b.byte() % 2:
                    snap[key] = np.array([b.pick([-1, 0, 1, 2, 3, -2, 10**9])
                                          for _ in range(tr.k2)], np.int64)
        try:
            tr._restore(snap)
        except (TypeError, ValueError):
            return
        tr.learn_many(np.ones((3, 2)), None)
        tr.learn_one(np.ones(2), 2 if loss == "cross_entropy" else np.ones(3))
        return
    st = sr.SequenceTrainer(net)
    snap = st._upd._snapshot()
    for _ in range(b.byte() % 3 + 1):
        key = b.pick(["counters", "m1", "m2"])
        if key == "counters":
            snap["counters"][b.pick(sorted(snap["counters"]))] = b.value()
        else:
            snap[key] = b.array(snap[key].shape)
    try:
        st._upd._restore(snap)
    except (TypeError, ValueError):
        return
    st.fit([np.ones((4, 2))], [np.ones((4, 3))], epochs=1)


def main() -> None:
    if "--random" in sys.argv:
        n = int(sys.argv[sys.argv.index("--random") + 1])
        rng = np.random.default_rng(0)
        for _ in range(n):
            one_input(rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
        print(f"fuzz_pickle: {n} random inputs, no crash")
        return
    if atheris is None:
        raise SystemExit("atheris is not installed (pip install atheris), or use --random N")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
