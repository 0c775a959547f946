"""Vanishing and exploding gradients, measured.

Part 1 -- how far back does the loss reach? For an Elman RNN (tanh and relu), an LSTM and a
GRU, the loss of the last step of a T-step window is backpropagated through the window and
the norm of dLoss/dh_t is printed and plotted against the distance T-1-t (averaged over a few
random networks and inputs; float64, the NumPy reference's exact backward,
``streamrnn.reference.hidden_state_gradients``). Two initialisations: PyTorch's default
(uniform +-1/sqrt(H)), and the recurrent matrix W_hh scaled so that its spectral radius is
``--gain`` (default 3).

Part 2 -- what clipping does. A tanh RNN with that large W_hh is trained online with the C
trainer (TBPTT k1 = k2 = 50, SGD lr=0.05) on a noisy sine, once without clipping and once
with ``clip_norm=1``. The trainer reports the pre-clip gradient norm of every update
(``last_grad_norm``): without clipping an exploding gradient throws the weights far away and
the loss with them; with clipping the same gradients are rescaled to norm 1 and training
stays stable. (The trainer's non-finite guard is a different safety net: an update whose
gradient or result is not finite is skipped, so the weights never become NaN.)

    python examples/gradient_flow.py [--out gradient_flow.png] [--gain 3] [--quick]

The figures are printed; the plot is saved only with ``--out FILE`` (nothing is written
otherwise) and needs matplotlib (``pip install matplotlib``). ``--quick`` (or
STREAMRNN_EXAMPLE_QUICK=1) runs a shorter version (used by the tests).
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

import streamrnn as sr
from streamrnn import reference as ref

QUICK = os.environ.get("STREAMRNN_EXAMPLE_QUICK") == "1"
CELLS = {"rnn_tanh": "RNN tanh", "rnn_relu": "RNN relu", "lstm": "LSTM", "gru": "GRU"}


def scale_recurrent(W_hh: np.ndarray, H: int, gain: float) -> None:
    """Scale every H x H block of W_hh (G*H, H) to spectral radius ``gain``, in place."""
    for g in range(W_hh.shape[0] // H):
        block = W_hh[g * H:(g + 1) * H]
        radius = max(abs(np.linalg.eigvals(block)))
        block *= gain / radius


def gradient_curve(cell: str, gain: float | None, T: int, H: int, seeds: int,
                   forget_bias: float = 0.0) -> np.ndarray:
    """Geometric mean over ``seeds`` of ||dLoss/dh_t|| / ||dLoss/dh_{T-1}||, indexed by
    distance; ``forget_bias`` is added to the LSTM's forget-gate biases."""
    D = 4
    curves = []
    for seed in range(seeds):
        params = ref.random_params(cell, D, H, 1, 1, seed=seed)
        net = ref.Net(cell, D, H, 1, 1, params=params)
        if gain is not None:
            scale_recurrent(net.p["weight_hh_l0"], H, gain)
        if forget_bias:
            net.p["bias_ih_l0"][H:2 * H] += forget_bias
        X = np.random.default_rng(100 + seed).normal(size=(T, D))
        h0, c0 = net.zero_state()
        dh = ref.hidden_state_gradients(net, h0, c0, X, [1.0])[:, 0, :]
        norms = np.linalg.norm(dh, axis=1)[::-1]          # distance 0, 1, ..., T-1
        curves.append(norms / norms[0])
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(np.maximum(curves, 1e-300)), axis=0))


def verdict(curve: np.ndarray, d: int) -> str:
    r = curve[d]
    if not math.isfinite(r) or r > 10:
        return "explodes"
    if r < 1e-3:
        return "vanishes"
    return "carries"


def train_online(gain: float, clip_norm: float | None, steps: int, H: int) -> dict:
    """Train a tanh RNN with W_hh of spectral radius ``gain`` on a noisy sine, online."""
    net = sr.RNN(1, H, output_size=1, nonlinearity="tanh", dtype="float64", seed=3)
    W = net.layers[0].weight_hh
    scale_recurrent(W, H, gain)
    tr = sr.OnlineTrainer(net, loss="mse", optimizer=sr.SGD(lr=0.05), k1=50, k2=50,
                          clip_norm=clip_norm)
    rng = np.random.default_rng(0)
    t = np.arange(steps + 1)
    series = np.sin(2 * np.pi * t / 40) + 0.1 * rng.normal(size=t.shape)
    losses, norms = [], []
    updates = 0
    for i in range(steps):
        y = tr.learn_one([series[i]], [series[i + 1]])
        losses.append(float((y[0] - series[i + 1]) ** 2))
        if tr.updates + tr.skipped_updates > updates:
            updates = tr.updates + tr.skipped_updates
            norms.append(tr.last_grad_norm)
    with np.errstate(over="ignore"):
        tail = np.array(losses[-steps // 5:])
    return {"losses": np.array(losses), "norms": np.array(norms),
            "tail_mse": float(np.mean(tail)) if np.all(np.isfinite(tail)) else float("inf"),
            "updates": tr.updates, "skipped": tr.skipped_updates,
            "max_weight": float(np.max(np.abs(net.state_dict()["head.weight"])))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None,
                    help="save the plot to this file (default: no plot, nothing written)")
    ap.add_argument("--quick", action="store_true", help="a shorter run (tests)")
    ap.add_argument("--gain", type=float, default=3.0,
                    help="spectral radius of W_hh for the 'large weights' runs")
    args = ap.parse_args()
    T, H, seeds = (40, 32, 2) if QUICK or args.quick else (100, 64, 5)
    steps = 4000

    print(f"Part 1: ||dLoss_T/dh_(T-d)|| / ||dLoss_T/dh_T|| (H={H}, T={T}, "
          f"geometric mean over {seeds} networks)")
    d_show = [1, 10, 25, T - 1]
    print(f"{'cell':10s} {'init':16s} " + " ".join(f"d={d:<8d}" for d in d_show) + " at d=25")
    curves = {}
    for cell, name in CELLS.items():
        for gain in (None, args.gain):
            c = gradient_curve(cell, gain, T, H, seeds)
            curves[(cell, gain)] = c
            init = "PyTorch" if gain is None else f"radius {gain:g}"
            print(f"{name:10s} {init:16s} " + " ".join(f"{c[d]:<10.2e}" for d in d_show)
                  + f" {verdict(c, 25)}")
    # the classic remedy for the LSTM: a positive forget-gate bias keeps c's path open
    c = gradient_curve("lstm", None, T, H, seeds, forget_bias=3.0)
    curves[("lstm", "forget bias 3")] = c
    print(f"{'LSTM':10s} {'forget bias +3':16s} " + " ".join(f"{c[d]:<10.2e}" for d in d_show)
          + f" {verdict(c, 25)}")

    print(f"\nPart 2: online training of a tanh RNN with W_hh radius {args.gain:g}, "
          f"TBPTT k1=k2=50, SGD lr=0.05, {steps} steps")
    runs = {}
    for label, clip in (("no clipping", None), ("with clip_norm=1", 1.0)):
        r = train_online(args.gain, clip, steps, H)
        runs[label] = r
        finite = r["norms"][np.isfinite(r["norms"])]
        print(f"{label:18s} pre-clip grad norm median {np.median(finite):.3g}, max "
              f"{np.max(finite):.3g}; updates {r['updates']}, skipped {r['skipped']}; "
              f"MSE over the last fifth {r['tail_mse']:.4g}; max |head weight| "
              f"{r['max_weight']:.3g}")

    if args.out is None:
        print("no plot saved (pass --out gradient_flow.png to save one)")
        return
    try:
        import matplotlib
        matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = dict(zip(CELLS, ["C0", "C3", "C2", "C1"]))
    for (cell, gain), c in curves.items():
        a1.semilogy(np.arange(T), np.clip(c, 1e-300, 1e300), color=colors[cell],
                    ls="-" if gain is None else ("--" if isinstance(gain, float) else ":"),
                    label=f"{CELLS[cell]}, " + ("PyTorch init" if gain is None else
                                                f"W_hh radius {gain:g}"
                                                if isinstance(gain, float) else str(gain)))
    a1.set_xlabel("distance back in time d (steps)")
    a1.set_ylabel("||dL_T/dh_(T-d)|| / ||dL_T/dh_T||")
    a1.set_title("How far back the gradient reaches")
    a1.legend(fontsize=7)
    for label, r in runs.items():
        n = r["norms"]
        a2.semilogy(np.arange(len(n)), np.where(np.isfinite(n), n, np.nan), label=label)
    a2.axhline(1.0, color="k", lw=0.8, ls=":", label="clip_norm = 1")
    a2.set_xlabel("update")
    a2.set_ylabel("pre-clip gradient norm")
    a2.set_title(f"tanh RNN, W_hh radius {args.gain:g}: online training")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"plot saved to {args.out}")


if __name__ == "__main__":
    main()
