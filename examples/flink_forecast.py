"""Forecast many keyed series with Apache Flink (local mini-cluster, parallelism 2).

    pip install "streamrnn[flink]"          # Java 11+ on the PATH
    python examples/flink_forecast.py [input.csv] [--mode per_key|shared]

Without an input file it writes ``flink_series.csv`` (300 keys, 40 values each, lines
``key,timestamp,value``, arrivals interleaved) and reads it. Prints the number of forecasts,
a few of them, and the bad records (side output) with their reasons.
"""
import argparse
import math
import random
import sys

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

import streamrnn as sr
from streamrnn.flink import forecast_stream


def write_csv(path, n_keys=300, n_per=40, seed=0):
    rng = random.Random(seed)
    rows = [(f"sensor{k}", t, 10 + 3 * math.sin(0.3 * t + k) + rng.gauss(0, 0.1))
            for t in range(n_per) for k in range(n_keys)]
    with open(path, "w") as fh:
        fh.writelines(f"{k},{t},{y:.6f}\n" for k, t, y in rows)
        fh.write(",5,1.0\nsensor1,6,not-a-number\n")          # two bad records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="?", default=None)
    ap.add_argument("--mode", choices=("per_key", "shared"), default="per_key")
    a = ap.parse_args()
    path = a.csv or "flink_series.csv"
    if a.csv is None:
        write_csv(path)
    model = None
    if a.mode == "shared":          # a model trained beforehand, broadcast to every worker
        f = sr.Forecaster(hidden_size=16, seed=0)
        for t in range(2000):
            f.learn_one(10 + 3 * math.sin(0.3 * t))
        model = sr.dumps(f)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)   # workers use this interpreter
    env.set_parallelism(2)
    with open(path) as fh:
        lines = fh.read().splitlines()
    ds = env.from_collection(lines, type_info=Types.STRING())
    out, bad = forecast_stream(ds, a.mode, settings={"hidden_size": 16, "seed": 0},
                               model=model)
    tagged = out.map(lambda r: ("forecast",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .union(bad.map(lambda r: ("bad",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY()))
    n = 0
    with tagged.execute_and_collect() as results:
        for r in results:
            if r[0] == "bad":
                print("bad record:", r[1], "-", r[2])
            else:
                n += 1
                if n <= 3:
                    print(f"{r[1]} t={r[2]}: next value {r[3]:.3f}")
    print(f"{n} forecasts")


if __name__ == "__main__":
    main()
