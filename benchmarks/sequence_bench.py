"""Window training speed: ``SequenceTrainer.learn_sequence`` against the NumPy reference and
PyTorch.

One training update on one window of T steps (forward, full BPTT, clip, Adam), n-to-n mse,
float32 and float64, unidirectional and bidirectional, one layer, D = 8, O = 1. Every figure
is the median over repeated rounds, measured round-robin (each round times ours, the reference
and torch once, ``bench.interleaved``), so all three columns see the same machine load.
BLAS and torch use one thread.

    python benchmarks/sequence_bench.py            # LSTM/GRU, H = 32, 128, T = 50
    python benchmarks/sequence_bench.py --quick    # fewer rounds
    python benchmarks/sequence_bench.py --clock cpu   # CPU time (shared, overloaded host)

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
import sys
import time

import numpy as np

import streamrnn as sr
from streamrnn import reference

from bench import CLOCK, interleaved  # benchmarks/bench.py: round-robin medians of per-call means

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

    nd = 2 if bidirectional else 1
    rn = reference.WindowNet(cell, D, H, 1, O, nd, net.parameters().astype(dtype))
    rt = reference.SequenceTrainer([rn], "mse", sr.Adam(lr=1e-4), clip_norm=1.0)

    def ref_step():
        v, g = reference.sequence_loss_and_grad(rn, X, Y, "mse")
        rt.apply(v, g)

    fns = {"ours": lambda: tr.learn_sequence(X, Y), "ref": ref_step}
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

        fns["torch"] = torch_step
    m = interleaved(fns, rounds, inner={"ours": 20, "ref": 1, "torch": 5})
    return m["ours"], m["ref"], m.get("torch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--H", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: time.perf_counter; cpu: time.process_time (see bench.py)")
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    print(f"command: python benchmarks/sequence_bench.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"learn_sequence, T = {args.T}, D = 8, O = 1, one layer, Adam + clip_norm; "
          f"median of {rounds} round-robin rounds (ms per window update), clock {args.clock}\n")
    print("| cell | H | dtype | bidirectional | ours ms | ref ms | torch ms | ref/ours | "
          "torch/ours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in ("lstm", "gru"):
        for H in args.H:
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
