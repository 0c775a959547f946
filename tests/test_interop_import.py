"""streamrnn.interop: importing streamrnn imports none of the optional packages, and a
missing package gives an ImportError naming the extra to install."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "onnx", "onnxruntime", "keras", "tensorflow", "jax")


def run_py(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_streamrnn_imports_no_optional_package():
    out = run_py(f"""
        import sys
        import streamrnn as sr
        import streamrnn.interop, streamrnn.interop.torch, streamrnn.interop.onnx
        import streamrnn.interop.keras
        for name in ("from_torch", "to_torch", "to_onnx", "from_onnx", "from_keras"):
            assert callable(getattr(sr, name)) and name in sr.__all__, name
        assert callable(sr.LSTM.to_torch)
        print(sorted(m for m, mod in sys.modules.items()
                     if m.split(".")[0] in {HEAVY!r} and mod is not None))
        """)
    assert out.strip() == "[]"


@pytest.mark.parametrize("call, extra", [
    ("sr.to_torch(sr.LSTM(2, 3))", "torch"),
    ("sr.LSTM(2, 3).to_torch()", "torch"),
    ("sr.from_torch(object())", "torch"),
    ("sr.to_onnx(sr.GRU(2, 3))", "onnx"),
    ("sr.from_onnx('model.onnx')", "onnx"),
    ("sr.from_keras(object())", "keras"),
])
def test_missing_package_names_the_extra(call, extra):
    # sys.modules[name] = None makes "import name" raise ImportError, as if not installed
    out = run_py(f"""
        import sys
        for m in {HEAVY!r}:
            sys.modules[m] = None
        import streamrnn as sr
        try:
            {call}
        except ImportError as e:
            print(e)
        else:
            print("no error")
        """)
    assert f'pip install "streamrnn[{extra}]"' in out, out
