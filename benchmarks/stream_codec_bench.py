"""CPU cost of Forecaster.export_stream / import_stream (µs per call), this checkout's
streamrnn/io.py against a baseline io.py (e.g. another checkout's) loaded into the same
process, interleaved round-robin; the blobs of both must be byte-identical.

    PYTHONPATH=. python benchmarks/stream_codec_bench.py --baseline /path/to/other/streamrnn/io.py \
        [--settings "{'weights': 'per_key'}"] [--rounds 40]

(PYTHONPATH=.: the checkout's streamrnn, not an installed one; the script prints which.)
"""
import argparse
import ast
import importlib.util
import statistics
import sys
import time

import numpy as np

import streamrnn as sr
import streamrnn.io as new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="an io.py to compare against")
    ap.add_argument("--settings", default="{}", help="Forecaster settings (a Python dict)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls", type=int, default=50, help="calls per timed block")
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("streamrnn._io_baseline", a.baseline)
    old = importlib.util.module_from_spec(spec)
    old.__package__ = "streamrnn"
    sys.modules[spec.name] = old
    spec.loader.exec_module(old)
    kw = {"hidden_size": 16, "seed": 0, **ast.literal_eval(a.settings)}
    f = sr.Forecaster(**kw)
    rng = np.random.default_rng(0)
    for t in range(60):
        f.learn_one(float(np.sin(t / 3) + 0.1 * rng.normal()), key="a")
    s = f._lookup("a")
    blob = new._dump_stream(f, s)
    if old._dump_stream(f, s) != blob:
        sys.exit("the two io.py write different bytes")
    g = sr.Forecaster(**kw)
    g.learn_one(1.0, key="z")

    def timed(fn):
        t0 = time.process_time()
        for _ in range(a.calls):
            fn()
        return (time.process_time() - t0) / a.calls * 1e6

    res = {k: [] for k in ("export old", "export new", "import old", "import new")}
    for _ in range(a.rounds):
        res["export old"].append(timed(lambda: old._dump_stream(f, s)))
        res["export new"].append(timed(lambda: new._dump_stream(f, s)))
        res["import old"].append(timed(lambda: old._load_stream(g, blob)))
        res["import new"].append(timed(lambda: new._load_stream(g, blob)))
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"streamrnn from {sr.__file__}")
    print(f"settings {kw}; blob {len(blob)} bytes; median of {a.rounds} rounds of "
          f"{a.calls} calls, CPU time (µs per call)")
    for op in ("export", "import"):
        o, n = med[op + " old"], med[op + " new"]
        print(f"{op}: baseline {o:.0f}  this {n:.0f}  ({o / n:.2f}x)")


if __name__ == "__main__":
    main()
