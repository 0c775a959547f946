"""A tour of the public API, written as fully typed user code.

``mypy --strict examples/typed_usage.py`` must pass (.ci/typing runs it): it checks that the
package's annotations and the compiled module's stubs (streamrnn/_core.pyi) give user code
precise types. It also runs: ``python examples/typed_usage.py`` (a second or so).
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

import streamrnn as sr

Vector = npt.NDArray[np.floating]


def networks_and_states() -> Tuple[sr.LSTM, sr.State]:
    """Networks, their parameters, states, step/run and many streams."""
    net = sr.LSTM(input_size=3, hidden_size=16, num_layers=2, output_size=1, seed=0)
    gru = sr.GRU(3, 8, dtype="float64", seed=1)
    rnn = sr.RNN(3, 8, nonlinearity="relu", seed=2)
    layer: sr.Layer = net.layers[0]
    assert layer.weight_ih.shape == (4 * 16, 3)
    head: Optional[sr.Head] = net.head
    assert head is not None and head.weight.shape == (1, 16)
    params: Dict[str, np.ndarray] = net.state_dict()
    net.load_state_dict(params)

    state: sr.State = net.new_state()
    x = np.zeros(3, dtype=np.float32)
    y: Vector = net.step(x, state)
    out = np.empty(1, dtype=np.float32)
    net.step(x, state, out=out)
    Y: Vector = net.run(np.ones((5, 3), dtype=np.float32), state)
    assert y.shape == (1,) and Y.shape == (5, 1)
    h: Vector = state.h
    c: Optional[Vector] = state.c
    assert h.shape == (2, 16) and c is not None
    snapshot: sr.State = state.copy()
    state.reset()

    batch: sr.StateBatch = net.new_states(4)
    Yb: Vector = net.step_many(np.zeros((4, 3), np.float32), batch)
    Ys: Vector = net.step_many(np.zeros((2, 3), np.float32), batch, index=[0, 3])
    first: sr.State = batch[0]
    assert Yb.shape == (4, 1) and Ys.shape == (2, 1) and first.is_view and len(batch) == 4
    batch.reset([1, 2])

    for other in (gru, rnn):
        s = other.new_state()
        assert other.step(x.astype(other.dtype), s).shape == (8,) and s.c is None
    restored: sr.State = pickle.loads(pickle.dumps(snapshot))
    return net, restored


def online_training(net: sr.LSTM) -> sr.OnlineTrainer:
    """OnlineTrainer with each optimizer; learn_one returns the prediction made first."""
    optimizers: List[sr.SGD | sr.Adam | sr.RMSprop] = [
        sr.SGD(lr=0.01, momentum=0.9), sr.Adam(lr=1e-2), sr.RMSprop(lr=1e-3)]
    trainer = sr.OnlineTrainer(net, optimizer=optimizers[1], k1=1, k2=16, clip_norm=1.0)
    for opt in optimizers:
        sr.OnlineTrainer(sr.GRU(1, 4, output_size=1), loss="mse", optimizer=opt)
    for t in range(50):
        x = [math.sin(0.1 * t), math.cos(0.1 * t), 1.0]
        y_pred: Vector = trainer.learn_one(x, [math.sin(0.1 * (t + 1))])
        assert y_pred.shape == (1,)
    steps: int = trainer.steps
    loss: float = trainer.running_loss
    stats: Dict[str, float] = trainer.stats()
    assert steps == 50 and math.isfinite(loss) and "updates" in stats
    return trainer


def forecasting() -> sr.Forecaster:
    """Forecaster on one stream and on keyed streams; progressive validation."""
    f = sr.Forecaster(hidden_size=8, seed=0)
    for t in range(100):
        f.learn_one(10 + 5 * math.sin(0.3 * t))
        f.learn_one(float(t % 7), key="sensor-2")
    ahead: List[float] = list(f.forecast(horizon=3))
    keyed = f.forecast(2, key="sensor-2")
    assert len(ahead) == 3 and len(keyed) == 2
    res: sr.Evaluation = sr.evaluate([math.sin(0.2 * t) for t in range(60)],
                                     sr.Forecaster(hidden_size=4, seed=1), horizon=2)
    skill: List[float] = res.skill
    assert len(skill) == 2
    return f


def saving_and_loading(net: sr.LSTM, trainer: sr.OnlineTrainer, f: sr.Forecaster) -> None:
    """save/load to files (atomic), dumps/loads to bytes; ``expect=`` types the result."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "forecaster.srnn")
        sr.save(f, path, metadata={"note": "typed example"})
        f2: sr.Forecaster = sr.load(path, sr.Forecaster)
        f3, meta = sr.load(path, sr.Forecaster, with_metadata=True)
        assert meta["note"] == "typed example" and f3.keys() == f2.keys()
    net2: sr.LSTM = sr.loads(sr.dumps(net), sr.LSTM)
    tr2: sr.OnlineTrainer = sr.loads(sr.dumps(trainer), sr.OnlineTrainer)
    assert net2.hidden_size == net.hidden_size and tr2.steps == trainer.steps
    try:
        sr.loads(b"not a streamrnn file")
    except sr.FileFormatError as e:
        message: str = str(e)
        assert message


def main() -> None:
    net, _ = networks_and_states()
    trainer = online_training(net)
    f = forecasting()
    saving_and_loading(net, trainer, f)
    print(f"typed_usage: ok (streamrnn {sr.__version__})")


if __name__ == "__main__":
    main()
