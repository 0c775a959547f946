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
from .network import GRU, LSTM, RNN, Head, Layer
from .optim import SGD, Adam, RMSprop
from .trainer import OnlineTrainer
from .sequence import Seq2Seq, SequenceTrainer
from .forecast import Forecaster
from .evaluate import Evaluation, evaluate
from .io import FileFormatError, dumps, load, loads, save
# lazy: these import torch/onnx/keras only when called
from .interop import from_keras, from_onnx, from_torch, to_onnx, to_torch

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "RNN", "State", "StateBatch", "Layer", "Head", "OnlineTrainer",
           "SequenceTrainer", "Seq2Seq",
           "SGD", "Adam", "RMSprop", "Forecaster", "evaluate", "Evaluation", "save", "load", "dumps", "loads", "FileFormatError",
           "from_torch", "to_torch", "to_onnx", "from_onnx", "from_keras",
           "__version__"]
