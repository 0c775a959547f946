"""Interoperability with PyTorch, ONNX and Keras 3 (optional extras).

Importing this package imports none of torch, onnx, onnxruntime or keras: each function
imports its package when called and raises ImportError naming the extra to install
(``pip install "streamrnn[torch]"``, ``"streamrnn[onnx]"``, ``"streamrnn[keras]"``).
"""
from .keras import from_keras
from .onnx import from_onnx, to_onnx
from .torch import from_torch, to_torch

__all__ = ["from_torch", "to_torch", "to_onnx", "from_onnx", "from_keras"]
