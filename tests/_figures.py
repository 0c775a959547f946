"""Figures for RELIABILITY.md: tests call ``record(name, value)``; with the environment
variable STREAMRNN_FIGURES set to a file name, each figure is appended there as a JSON line
(``.ci/reliability --long`` collects them). Without it, nothing is written."""
from __future__ import annotations

import json
import os


def record(name, value):
    path = os.environ.get("STREAMRNN_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"figure": name, "value": value}) + "\n")


def long_run():
    """True for the full figures (STREAMRNN_LONG=1); CI runs scaled-down counts."""
    return bool(os.environ.get("STREAMRNN_LONG"))
