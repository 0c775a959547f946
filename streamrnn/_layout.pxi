# =======================================================================================
# Layout facts (issue 15), read from the C core: the one place the Python layer takes gate
# counts, parameter offsets and shapes, enum codes, counter names and the ring-slot layout
# from. (The NumPy reference, streamrnn/reference/, keeps its own independent copy.)
# =======================================================================================
from collections import namedtuple as _namedtuple
from types import MappingProxyType as _MappingProxy

#: gates per cell (srnn_gates): rows of weight_ih are G * hidden_size
GATES = _MappingProxy({name: srnn_gates(code) for name, code in CELL_CODES.items()})
#: loss name -> srnn_loss code
LOSSES = _MappingProxy({"mse": SRNN_LOSS_MSE, "cross_entropy": SRNN_LOSS_XENT})
#: optimizer kind (SGD/Adam/RMSprop ``.kind``) -> srnn_opt code
OPTIMIZERS = _MappingProxy({"sgd": SRNN_OPT_SGD, "adam": SRNN_OPT_ADAM,
                            "rmsprop": SRNN_OPT_RMSPROP})
#: every counter of a trainer (srnn_trainer), in one order; the float ones among them; the
#: ones a window trainer's optimizer (_Updater) keeps
TRAINER_COUNTERS = _TRAINER_COUNTERS
TRAINER_FLOAT_COUNTERS = ("loss_sum", "last_loss", "last_grad_norm")
UPDATER_COUNTERS = ("updates", "skipped", "opt_steps", "last_loss", "last_grad_norm")
TrainerCounters = _namedtuple("TrainerCounters", TRAINER_COUNTERS)


def trainer_counters(_Trainer tr not None):
    """A trainer's counters as a TrainerCounters record (fields TRAINER_COUNTERS)."""
    _ready(tr)
    return TrainerCounters(**tr._stats())


cdef int _layout_dims(srnn_dims *d, object cell, object input_size, object hidden_size,
                      object num_layers, object output_size, object num_directions) except -1:
    """Fill d from Python sizes (output_size None or 0: no head); ValueError/TypeError for
    anything the C core refuses (srnn_check_dims)."""
    if not isinstance(cell, str) or cell not in CELL_CODES:
        raise ValueError(f"cell must be one of {sorted(CELL_CODES)}, got {cell!r}")
    if output_size is None:
        output_size = 0
    for name, v, lo in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                        ("num_layers", num_layers, 1), ("output_size", output_size, 0),
                        ("num_directions", num_directions, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
        if v < lo or v > 2147483647:
            raise ValueError(f"{name} must be an integer in [{lo}, 2147483647], got {v}")
    if num_directions > 2:
        raise ValueError(f"num_directions must be 1 or 2, got {num_directions}")
    d.cell = CELL_CODES[cell]
    d.input_size = input_size
    d.hidden_size = hidden_size
    d.num_layers = num_layers
    d.output_size = output_size
    st = srnn_check_dims(d, num_directions)
    if st != SRNN_OK:
        raise ValueError(f"invalid network sizes (input_size={input_size}, "
                         f"hidden_size={hidden_size}, num_layers={num_layers}, "
                         f"output_size={output_size}): {srnn_status_name(st).decode()}")
    return 0


def num_params(cell, input_size, hidden_size, num_layers, output_size, num_directions=1):
    """Length of a network's flat parameter buffer (srnn_num_params)."""
    cdef srnn_dims d
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, num_directions)
    return srnn_num_params(&d, num_directions)


def param_layout(cell, input_size, hidden_size, num_layers, output_size, num_directions=1):
    """The flat parameter buffer as rows (name, offset, shape), in PyTorch's
    named_parameters order: per layer k and direction (suffix "_reverse" for the backward
    one) weight_ih_l{k} (G*H, D_k), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k}
    (G*H,); then head.weight (O, ndir*H) and head.bias (O,) with a head. Offsets (elements)
    come from srnn_layer_offset; each layer's rows are checked to end where the C core puts
    the next one."""
    cdef srnn_dims d
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, num_directions)
    cdef int ndir = num_directions, L = d.num_layers, k, r
    G, H, D, O = srnn_gates(d.cell), d.hidden_size, d.input_size, d.output_size
    rows = []
    cdef size_t end
    for k in range(L):
        din = D if k == 0 else ndir * H
        for r in range(ndir):
            off = srnn_layer_offset(&d, ndir, k, r)
            sfx = f"_l{k}" + ("_reverse" if r else "")
            arrays = [("weight_ih", (G * H, din)), ("weight_hh", (G * H, H)),
                      ("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
            if d.cell == SRNN_LSTM_PEEP:
                arrays.append(("weight_peephole", (3 * H,)))   # [p_i | p_f | p_o]
            for name, shape in arrays:
                rows.append((name + sfx, off, shape))
                off += int(np.prod(shape))
            end = srnn_layer_offset(&d, ndir, k + 1, 0) if r == ndir - 1 else \
                srnn_layer_offset(&d, ndir, k, r + 1)
            if off != end:
                raise RuntimeError("internal error: parameter layout disagrees with the C core")
    off = srnn_layer_offset(&d, ndir, L, 0)
    if O:
        rows.append(("head.weight", off, (O, ndir * H)))
        rows.append(("head.bias", off + O * ndir * H, (O,)))
        off += O * ndir * H + O
    if off != srnn_num_params(&d, ndir):
        raise RuntimeError("internal error: parameter layout disagrees with the C core")
    return tuple(rows)


def ring_layout(cell, input_size, hidden_size, num_layers, output_size):
    """One online-trainer ring slot: (size, fields), fields rows (name, offset, count,
    length, stride) from srnn_record_field: field name is ``count`` blocks of ``length``
    elements, block k at slot[offset + k * stride]."""
    cdef srnn_dims d
    cdef size_t off, count, length, stride
    cdef const char *name
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, 1)
    fields = []
    for f in range(SRNN_RECORD_FIELDS):
        name = srnn_record_field(&d, f, &off, &count, &length, &stride)
        if name == NULL:
            raise RuntimeError("internal error: ring field missing")
        fields.append((name.decode("ascii"), off, count, length, stride))
    return srnn_record_size(&d), tuple(fields)
