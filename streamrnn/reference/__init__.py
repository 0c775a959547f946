"""The NumPy reference of streamrnn: the executable specification of the C core.

Plain, readable and slow on purpose: loops over time, one small function per concept, and
the maths of each cell written exactly once (forward in :func:`cells._cell_pointwise`,
backward in :func:`cells._cell_backward`). The C core (``src_c/``) is tested against this
package; where the two differ, this package is right unless it contradicts ``DESIGN.md``.
It imports nothing from the compiled core or the public classes: only the argument checks
(``streamrnn._checks``) and the optimizer settings (``streamrnn.optim``).

One model of a network, :class:`Net` (one or two directions; module ``net``), and the
algorithms as separate modules: ``layout`` (sizes, the flat parameter layout), ``cells``
(each cell's step, forward and backward), ``losses``, ``optim`` (clipping, the optimizers,
the end of an update), ``online`` (:class:`Trainer`, TBPTT(k1, k2) over a ring of step
records) and ``window`` (whole windows, sequence and encoder-decoder gradients,
:class:`SequenceTrainer`). Everything, private helpers included, is importable from
``streamrnn.reference`` itself.
"""
from ..optim import SGD, Adam, RMSprop  # noqa: F401  (the optimizers the reference implements)
from .cells import _cell_backward, _cell_pointwise, _LayerRecord, sigmoid
from .layout import (CELLS, gate_count, num_params, param_shapes, random_params,
                     split_params, window_param_shapes)
from .losses import LOSSES, _loss_and_dy, _parse_target, sequence_loss, step_loss
from .net import Net, WindowNet, _StepRecord
from .online import (Trainer, _backward, _loss_and_grad, hidden_state_gradients,
                     window_loss_and_grad)
from .optim import _l2, clip_gradient, optimizer_step
from .window import (SequenceTrainer, decoder_inputs, seq2seq_loss_and_grad,
                     sequence_loss_and_grad, window_backward, window_forward)

__all__ = [
    "CELLS", "LOSSES", "gate_count", "param_shapes", "num_params", "split_params",
    "random_params", "sigmoid", "Net", "step_loss", "clip_gradient", "optimizer_step",
    "window_loss_and_grad", "hidden_state_gradients", "Trainer",
    "window_param_shapes", "WindowNet", "window_forward", "window_backward", "sequence_loss",
    "sequence_loss_and_grad", "decoder_inputs", "seq2seq_loss_and_grad", "SequenceTrainer",
]
