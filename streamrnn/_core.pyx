# cython: language_level=3
"""Compiled core of streamrnn: owns the memory, validates, releases the GIL, raises.

The numerics live in src_c/ (plain C99); this module hands them raw pointers into
NumPy arrays it owns, plus a table of BLAS function pointers taken from
``scipy.linalg.cython_blas`` when a network needs BLAS at all (loaded on first need, see
_blas.pxi; the extension links no BLAS of its own).

Ownership and aliasing rules (checked here, assumed by the C code):
* a network owns one flat, C-contiguous parameter array; the per-weight arrays are views;
* a State owns (or, for a view into a StateBatch, shares) ``h`` (L, H) and ``c`` (L, H)
  and owns a private scratch buffer, so different states can step in parallel threads;
* ``out`` never overlaps the parameters or the state it is computed from, nor any input of
  the call (x, X, index);
* every buffer the C core keeps a pointer into (parameters, states, trainer buffers) lives in
  a ``_Memory`` block of fixed size and address: the NumPy arrays handed out over it do not
  own their data, so ``resize`` refuses, and whatever is done to such an array object
  (reshaping, re-striding, ``__setstate__``) never moves the memory the C core uses;
* objects made without their constructor (``State.__new__(State)``) raise on every use.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from cpython.exc cimport PyErr_CheckSignals

import sys

import numpy as np

cnp.import_array()

CELL_CODES = {"rnn_tanh": SRNN_RNN_TANH, "rnn_relu": SRNN_RNN_RELU, "lstm": SRNN_LSTM,
              "gru": SRNN_GRU, "gru_reset_before": SRNN_GRU_RB, "lstm_peephole": SRNN_LSTM_PEEP}
CELL_NAMES = {v: k for k, v in CELL_CODES.items()}
_DTYPES = {cnp.NPY_FLOAT32: np.dtype(np.float32), cnp.NPY_FLOAT64: np.dtype(np.float64)}

# The module, split by owner (each file is included here, in this order; one module):
include "_blas.pxi"      # BLAS table for the C core (loaded lazily), test gate
include "_memory.pxi"    # dtypes, argument checks, memory blocks, status errors
include "_threads.pxi"   # guards and holds: the one thread contract
include "_state.pxi"     # State, StateBatch
include "_network.pxi"   # _Network: parameters and the step loops
include "_trainer.pxi"   # _Trainer: online TBPTT
include "_window.pxi"    # _SeqWork, _Updater: whole windows
include "_layout.pxi"    # layout facts exported to Python (GATES, param_layout, ...)
