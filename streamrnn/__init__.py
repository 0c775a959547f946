"""streamrnn: recurrent networks stepped one sample at a time, with a C core.

>>> import numpy as np, streamrnn as sr
>>> net = sr.LSTM(input_size=8, hidden_size=64, output_size=1, seed=0)
>>> state = net.new_state()
>>> y = net.step(np.zeros(8, dtype=np.float32), state)
"""
from ._core import State, StateBatch
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
