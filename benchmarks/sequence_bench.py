"""Window training speed: ``SequenceTrainer.learn_sequence`` against the NumPy reference and
PyTorch.

One training update on one window of T steps (forward, full BPTT, clip, Adam), n-to-n mse,
float32 and float64, unidirectional and bidirectional, one layer, D = 8, O = 1. Every figure
is the median over repeated rounds; ratios compare numbers measured side by side in this run.
BLAS and torch use one thread.

    python benchmarks/sequence_bench.py            # LSTM/GRU, H = 32, 128, T = 50
    python benchmarks/sequence_bench.py --quick    # fewer rounds

Columns: ours = ``tr.learn_sequence(X, Y)``; ref = ``reference.sequence_loss_and_grad`` plus
``reference.SequenceTrainer.apply`` (the NumPy specification); torch = ``nn.LSTM/GRU`` +
``nn.Linear``, ``MSELoss``, ``backward()``, ``clip_grad_norm_``, ``torch.optim.Adam.step()``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import platform

import numpy as np

import streamrnn as sr
from streamrnn import reference

from bench import median_time  # benchmarks/bench.py: median over rounds of per-call means

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # torch is optional
    torch = None

CLASSES = {"lstm": sr.LSTM, "gru": sr.GRU}


def bench(cell: str, H: int, T: int, dtype: str, bidirectional: bool, rounds: int):
    D, O = 8, 1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, D)).astype(dtype)
    Y = rng.standard_normal((T, O)).astype(dtype)
    net = CLASSES[cell](D, H, 1, O, dtype=dtype, seed=0, bidirectional=bidirectional)
    tr = sr.SequenceTrainer(net, optimizer=sr.Adam(lr=1e-4), clip_norm=1.0)
    ours = median_time(lambda: tr.learn_sequence(X, Y), 20, rounds)

    nd = 2 if bidirectional else 1
    rn = reference.WindowNet(cell, D, H, 1, O, nd, net.parameters().astype(dtype))
    rt = reference.SequenceTrainer([rn], "mse", sr.Adam(lr=1e-4), clip_norm=1.0)

    def ref_step():
        v, g = reference.sequence_loss_and_grad(rn, X, Y, "mse")
        rt.apply(v, g)

    ref = median_time(ref_step, 1, max(3, rounds // 4))

    tt = None
    if torch is not None:
        tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
            D, H, bidirectional=bidirectional).to(tdt)
        head = torch.nn.Linear(nd * H, O).to(tdt)
        params = list(mod.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-4)
        xt, yt = torch.from_numpy(X), torch.from_numpy(Y)

        def torch_step():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(head(mod(xt)[0]), yt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss.item()

        tt = median_time(torch_step, 20, rounds)
    return ours, ref, tt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--T", type=int, default=50)
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    print(f"learn_sequence, T = {args.T}, D = 8, O = 1, one layer, Adam + clip_norm; "
          f"median of {rounds} rounds (ms per window update)\n")
    print("| cell | H | dtype | bidirectional | ours ms | ref ms | torch ms | ref/ours | "
          "torch/ours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in ("lstm", "gru"):
        for H in (32, 128):
            for dtype in ("float32", "float64"):
                for bi in (False, True):
                    ours, ref, tt = bench(cell, H, args.T, dtype, bi, rounds)
                    ts = f"{tt * 1e3:.3f}" if tt is not None else "-"
                    tr = f"{tt / ours:.1f}x" if tt is not None else "-"
                    print(f"| {cell} | {H} | {dtype} | {'yes' if bi else 'no'} | "
                          f"{ours * 1e3:.3f} | {ref * 1e3:.2f} | {ts} | {ref / ours:.0f}x | "
                          f"{tr} |", flush=True)
    print(f"\nPython {platform.python_version()}, streamrnn {sr.__version__}, numpy "
          f"{np.__version__}, torch {torch.__version__ if torch else '-'}, "
          f"{platform.machine()}")


if __name__ == "__main__":
    main()
