"""Flink figures: records/s and state bytes/key of streamrnn.flink, both modes, parallelism
1 and 2, against plain Python (one Forecaster per key, no Flink). Run with a Python that has
apache-flink:  python benchmarks/flink_bench.py [n_keys] [n_per_key]"""
import math
import sys
import time

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

import streamrnn as sr
from streamrnn import flink as srf

NK = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NP = int(sys.argv[2]) if len(sys.argv) > 2 else 30
SET = {"hidden_size": 16, "seed": 0}
lines = [f"k{k},{t},{10 + 3 * math.sin(0.3 * t + k):.6f}" for t in range(NP) for k in range(NK)]
m = sr.Forecaster(**SET)
for t in range(500):
    m.learn_one(10 + 3 * math.sin(0.3 * t))
MODEL = sr.dumps(m)


def flink(mode, par, data):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)
    env.set_parallelism(par)
    ds = env.from_collection(data, type_info=Types.STRING())
    out, _ = srf.forecast_stream(ds, mode, settings=SET, model=MODEL)
    t0 = time.perf_counter()
    n = sum(1 for _ in out.execute_and_collect())
    return time.perf_counter() - t0, n


def plain(mode):
    t0 = time.perf_counter()
    if mode == "per_key":
        fs = {}
        for ln in lines:
            k, t, y = ln.split(",")
            f = fs.setdefault(k, sr.Forecaster(**SET))
            f.learn_one(float(y))
            f.forecast(1)
        nbytes = sum(len(sr.dumps(f)) for f in fs.values()) / len(fs)
    else:
        g = sr.loads(MODEL)
        g._streams.clear()
        for ln in lines:
            k, t, y = ln.split(",")
            if k not in g._streams:
                g._streams[k] = srf._new_key_stream(g)
            g.learn_one(float(y), key=k)
            g.forecast(1, key=k)
        nbytes = sum(len(srf.pack_key_state(g, s)) for s in g._streams.values()) / NK
    return time.perf_counter() - t0, nbytes


start, _ = flink("per_key", 1, lines[:1])          # job start-up (one record)
print(f"records {len(lines)} ({NK} keys); job start-up {start:.1f} s")
for mode in ("per_key", "shared"):
    tp, nb = plain(mode)
    print(f"{mode}: plain Python {len(lines) / tp:.0f} rec/s ({1e6 * tp / len(lines):.0f} "
          f"us/rec), state {nb:.0f} bytes/key")
    for par in (1, 2):
        tf, n = flink(mode, par, lines)
        assert n == len(lines)
        net = max(tf - start, 1e-9)
        print(f"  flink p={par}: {len(lines) / tf:.0f} rec/s incl. start-up, "
              f"{len(lines) / net:.0f} rec/s without; overhead over plain "
              f"{1e6 * (net - tp) / len(lines):.0f} us/rec")
