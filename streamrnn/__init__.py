"""streamrnn: recurrent networks stepped one sample at a time, with a C core.

>>> import numpy as np, streamrnn as sr
>>> net = sr.LSTM(input_size=8, hidden_size=64, output_size=1, seed=0)
>>> state = net.new_state()
>>> y = net.step(np.zeros(8, dtype=np.float32), state)
"""
try:
    from ._core import State, StateBatch
except ModuleNotFoundError as _e:  # pragma: no cover - exercised in a subprocess
    if _e.name != __name__ + "._core":
        raise
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.exists(_os.path.join(_here, "_core.pyx")):
        raise ImportError(
            f"streamrnn is being imported from its source tree ({_here}), which has no "
            f"compiled core (streamrnn._core). Either build it there: `pip install -e .` "
            f"(or `python setup.py build_ext --inplace`) in {_os.path.dirname(_here)}; or, "
            f"to use an installed streamrnn (`pip install .`), run Python from another "
            f"directory, where the source tree does not shadow it.") from None
    raise ImportError(f"streamrnn's compiled core (streamrnn._core) is missing from {_here}: "
                      f"reinstall streamrnn (pip install --force-reinstall streamrnn)"
                      ) from None
import typing as _typing

from .network import GRU, LSTM, RNN, Head, Layer
from .optim import SGD, Adam, RMSprop
from .trainer import OnlineTrainer
# Eager: `evaluate` names both a submodule and a function; importing the submodule later
# would rebind `streamrnn.evaluate` to the module, so it is imported (cheaply) here.
from .evaluate import Evaluation, evaluate

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "RNN", "State", "StateBatch", "Layer", "Head", "OnlineTrainer",
           "SequenceTrainer", "Seq2Seq",
           "SGD", "Adam", "RMSprop", "Forecaster", "evaluate", "Evaluation", "save", "load", "dumps", "loads", "FileFormatError",
           "from_torch", "to_torch", "to_onnx", "from_onnx", "from_keras",
           "__version__"]

# Loaded on first use (PEP 562), to keep `import streamrnn` cheap: public name -> submodule.
# Type checkers see the same names through the TYPE_CHECKING imports below; pickles name the
# defining module (e.g. streamrnn.forecast), which unpickling imports anyway.
_LAZY: _typing.Dict[str, str] = {
    "Seq2Seq": "sequence", "SequenceTrainer": "sequence",
    "Forecaster": "forecast",
    "FileFormatError": "io", "dumps": "io", "load": "io", "loads": "io", "save": "io",
    # interop imports torch/onnx/keras only when its functions are called
    "from_keras": "interop", "from_onnx": "interop", "from_torch": "interop",
    "to_onnx": "interop", "to_torch": "interop",
}
_LAZY_MODULES: _typing.Tuple[str, ...] = ("sequence", "forecast", "io", "interop")

if _typing.TYPE_CHECKING:
    from . import forecast, interop, io, sequence
    from .forecast import Forecaster
    from .interop import from_keras, from_onnx, from_torch, to_onnx, to_torch
    from .io import FileFormatError, dumps, load, loads, save
    from .sequence import Seq2Seq, SequenceTrainer
else:
    def __getattr__(name: str) -> _typing.Any:
        import importlib

        module = _LAZY.get(name)
        if module is not None:
            value = getattr(importlib.import_module("." + module, __name__), name)
            globals()[name] = value
            return value
        if name in _LAZY_MODULES:   # `streamrnn.io` etc. without importing it first
            return importlib.import_module("." + name, __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> _typing.List[str]:
        return sorted(set(globals()) | set(__all__) | set(_LAZY_MODULES))
