"""The torch module returned by ``to_torch`` for networks with a linear head.

Imports torch at module level: only imported by :func:`streamrnn.interop.torch.to_torch`
and :func:`~streamrnn.interop.torch.from_torch`, never by ``import streamrnn``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

__all__ = ["RecurrentWithHead"]


class RecurrentWithHead(torch.nn.Module):
    """``nn.LSTM/GRU/RNN`` followed by an ``nn.Linear`` head on every timestep's top h.

    ``forward(x, hx=None)`` returns ``(head(output), h_n)`` (``h_n`` is ``(h_n, c_n)`` for an
    LSTM), i.e. what the wrapped recurrent module returns with its output sequence passed
    through the head. Attributes ``rnn`` and ``head``; ``state_dict()`` keys are therefore
    ``rnn.weight_ih_l0``, ..., ``head.weight``, ``head.bias``.
    """

    def __init__(self, rnn: torch.nn.RNNBase, head: torch.nn.Linear) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = head

    def forward(self, x: torch.Tensor, hx: Optional[Any] = None) -> Tuple[torch.Tensor, Any]:
        out, h_n = self.rnn(x, hx)
        return self.head(out), h_n
