"""The torch module returned by ``to_torch`` for networks with a linear head.

Imports torch at module level: only imported by :func:`streamrnn.interop.torch.to_torch`
and :func:`~streamrnn.interop.torch.from_torch`, never by ``import streamrnn``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

__all__ = ["RecurrentWithHead"]


class RecurrentWithHead(torch.nn.Module):
    """``nn.LSTM/GRU/RNN`` followed by an ``nn.Linear`` head on every timestep's top h, and
    optionally a learned initial state.

    ``forward(x, hx=None)`` returns ``(head(output), h_n)`` (``h_n`` is ``(h_n, c_n)`` for an
    LSTM), i.e. what the wrapped recurrent module returns with its output sequence passed
    through the head (``head`` None: the output itself). Attributes ``rnn``, ``head`` and,
    for a network with an initial state, the parameters ``h0`` (and ``c0`` for an LSTM) of
    shape ``(num_layers, 1, hidden_size)``, used (expanded to the batch) when ``hx`` is None;
    ``state_dict()`` keys are therefore ``rnn.weight_ih_l0``, ..., ``head.weight``,
    ``head.bias``, ``h0``, ``c0``.
    """

    def __init__(self, rnn: torch.nn.RNNBase, head: Optional[torch.nn.Linear],
                 h0: Optional[torch.Tensor] = None, c0: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = head
        self.h0 = None if h0 is None else torch.nn.Parameter(h0)
        self.c0 = None if c0 is None else torch.nn.Parameter(c0)

    def forward(self, x: torch.Tensor, hx: Optional[Any] = None) -> Tuple[torch.Tensor, Any]:
        if hx is None and self.h0 is not None:
            first = getattr(self.rnn, "batch_first", False)
            if x.dim() == 2:            # unbatched (T, D): h0 (L, H)
                hx = self.h0[:, 0]
                cx = None if self.c0 is None else self.c0[:, 0]
            else:
                n = x.shape[0 if first else 1]
                hx = self.h0.expand(-1, n, -1).contiguous()
                cx = None if self.c0 is None else self.c0.expand(-1, n, -1).contiguous()
            if cx is not None:
                hx = (hx, cx)
        out, h_n = self.rnn(x, hx)
        return (out if self.head is None else self.head(out)), h_n
