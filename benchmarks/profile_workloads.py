"""A workload to run under a profiler (perf record, valgrind --tool=callgrind, py-spy).

    PYTHONPATH=. perf record -o /tmp/srnn.data python benchmarks/profile_workloads.py run
    perf report -i /tmp/srnn.data --stdio | head -30

Workloads (LSTM float32, seed 0; each runs for --seconds of CPU time and prints its cost):
  run        net.run over 1000 steps, D=8, H=64 (the C floor of a step)
  step       net.step(x, s, out) from Python, D=8, H=64
  many       net.step_many over 1024 streams, D=8, H=64
  learn_one  OnlineTrainer(k1=1, k2=32, Adam, clip_norm=1).learn_one, D=1, H=64, O=1
"""
import argparse
import sys
import time

import numpy as np

import streamrnn as sr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=["run", "step", "many", "learn_one"])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--hidden", type=int, default=64)
    a = ap.parse_args()
    H = a.hidden
    rng = np.random.default_rng(0)
    if a.workload == "learn_one":
        net = sr.LSTM(1, H, output_size=1, seed=0)
        tr = sr.OnlineTrainer(net, optimizer=sr.Adam(1e-3), k1=1, k2=32, clip_norm=1.0)
        xs = np.sin(0.05 * np.arange(1001)).astype(np.float32)

        def block() -> int:
            for i in range(1000):
                tr.learn_one(xs[i:i + 1], xs[i + 1:i + 2])
            return 1000
    else:
        net = sr.LSTM(8, H, seed=0)
        s = net.new_state()
        X = rng.standard_normal((1000, 8)).astype(np.float32)
        Y = np.empty((1000, H), np.float32)
        x, out = X[0], np.empty(H, np.float32)
        b = net.new_states(1024)
        Xm = rng.standard_normal((1024, 8)).astype(np.float32)
        Ym = np.empty((1024, H), np.float32)

        def block() -> int:
            if a.workload == "run":
                net.run(X, s, out=Y)
                return 1000
            if a.workload == "many":
                net.step_many(Xm, b, out=Ym)
                return 1024
            for _ in range(1000):
                net.step(x, s, out)
            return 1000
    t0, n = time.process_time(), 0
    while time.process_time() - t0 < a.seconds:
        n += block()
    unit = "stream-step" if a.workload == "many" else (
        "sample" if a.workload == "learn_one" else "step")
    print(f"{a.workload} H={H}: {(time.process_time() - t0) / n * 1e6:.3f} µs per {unit} "
          f"(CPU time, {n} in {a.seconds:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
