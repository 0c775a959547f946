"""`import streamrnn` stays cheap (issue 20 §4): the heavy submodules load on first use.

Every check runs in a fresh interpreter, since this test process has long imported
everything. Nothing here measures time (benchmarks/footprint.py does); the tests pin which
modules an import loads, and that every public name still resolves to the same object.
"""
import os
import pickle
import subprocess
import sys

LAZY = ["streamrnn.forecast", "streamrnn.io", "streamrnn.sequence", "streamrnn.interop"]


def _run_isolated(code, stdin=None):
    """Run code in a fresh interpreter with this checkout's streamrnn; its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    if os.path.exists(os.path.join(root, "streamrnn", "__init__.py")):
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                         cwd=os.path.dirname(root), timeout=600, input=stdin)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_import_leaves_heavy_submodules_unloaded_and_every_public_name_resolves():
    code = f"""
import sys, importlib, types
import streamrnn as sr
print(sorted(m for m in {LAZY!r} if m in sys.modules))
homes = {{"Seq2Seq": "sequence", "SequenceTrainer": "sequence", "Forecaster": "forecast",
         "FileFormatError": "io", "dumps": "io", "load": "io", "loads": "io", "save": "io",
         "from_keras": "interop", "from_onnx": "interop", "from_torch": "interop",
         "to_onnx": "interop", "to_torch": "interop"}}
bad = []
for name in sr.__all__:
    value = getattr(sr, name)
    if name in homes:
        home = importlib.import_module("streamrnn." + homes[name])
        if value is not getattr(home, name):
            bad.append(name)
    if isinstance(value, types.ModuleType):
        bad.append(name)
print(bad)
print(sorted(set(sr.__all__) - set(dir(sr))))
print(sorted(m for m in {LAZY!r} if m in sys.modules))
print(callable(sr.evaluate) and not isinstance(sr.evaluate, types.ModuleType))
"""
    lines = _run_isolated(code).splitlines()
    assert lines == ["[]", "[]", "[]", repr(sorted(LAZY)), "True"]


def test_star_import_and_from_import_of_lazy_names():
    code = """
import sys
from streamrnn import Forecaster, save
print(Forecaster.__module__, save.__module__)
ns = {}
exec("from streamrnn import *", ns)
import streamrnn
print(sorted(set(streamrnn.__all__) - set(ns)))
"""
    assert _run_isolated(code).splitlines() == ["streamrnn.forecast streamrnn.io", "[]"]


def test_lazy_submodule_attributes_and_unknown_names():
    code = """
import sys, streamrnn as sr
print("streamrnn.io" in sys.modules)
print(sr.io.__name__, sr.sequence.__name__, sr.interop.__name__, sr.forecast.__name__)
try:
    sr.no_such_name
except AttributeError as e:
    print(str(e))
"""
    assert _run_isolated(code).splitlines() == [
        "False",
        "streamrnn.io streamrnn.sequence streamrnn.interop streamrnn.forecast",
        "module 'streamrnn' has no attribute 'no_such_name'"]


def test_pickle_of_a_lazy_class_loads_in_a_fresh_process():
    """A pickled Forecaster names streamrnn.forecast, which unpickling imports itself."""
    import numpy as np

    import streamrnn as sr
    fc = sr.Forecaster(seed=0)
    for v in np.sin(np.arange(40) / 3.0):
        fc.learn_one(float(v))
    blob = pickle.dumps(fc)
    expected = fc.forecast(1)
    code = """
import sys, pickle
import numpy as np
fc = pickle.loads(sys.stdin.buffer.read())
print(type(fc).__module__, type(fc).__name__)
print(np.asarray(fc.forecast(1)).tobytes().hex())
"""
    lines = _run_isolated(code, stdin=blob).splitlines()
    assert lines == ["streamrnn.forecast Forecaster", np.asarray(expected).tobytes().hex()]
