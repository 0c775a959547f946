# The one thread contract (RELIABILITY.md): per-object guards, and holds taken from Python.

cdef class _Guard:
    """Marks an object in use: a readers/writer counter without waiting (RELIABILITY.md,
    "One thread contract").

    ``busy``: 0 free, -1 one writer (a step of the state, a reset, a trainer call), n > 0
    readers (snapshots: copy, pickle, save). Set and cleared with the GIL held, so the
    check and the set cannot interleave; whoever conflicts raises RuntimeError at once.
    """
    def __cinit__(self):
        self.busy = 0

    def _enter(self, bint write, str what):
        """Python-level use (Forecaster): take the guard for reading or writing ``what``."""
        if write:
            if self.busy != 0:
                raise RuntimeError(f"{what} is being {'read' if self.busy > 0 else 'updated'} "
                                   f"by another thread; {_ONE_THREAD}")
            self.busy = -1
        else:
            if self.busy < 0:
                raise RuntimeError(f"{what} is being updated by another thread; "
                                   f"{_ONE_THREAD}")
            self.busy += 1

    def _exit(self, bint write):
        if write:
            self.busy = 0
        elif self.busy > 0:
            self.busy -= 1


_ONE_THREAD = ("to share objects between threads, take one lock around every call on "
               "them in every thread (networks, trainers and forecasters have a .lock for "
               "this; then calls wait instead of raising: RELIABILITY.md, 'One thread "
               "contract')")


cdef inline int _acquire(_Guard g) except -1:
    """Take a state's guard for a step, a reset or a trainer call (exclusive)."""
    if g.busy:
        raise RuntimeError("this state is being " + ("stepped" if g.busy < 0 else "copied")
                           + " by another thread; a State (or StateBatch) may be used by "
                           "one thread at a time; " + _ONE_THREAD)
    g.busy = -1
    return 0


cdef inline int _read_acquire(_Guard g) except -1:
    """Take a state's guard for a snapshot read (copy, pickle, save): shared with readers."""
    if g.busy < 0:
        raise RuntimeError("this state is being stepped by another thread; it cannot be "
                           "read (copied, pickled, saved) meanwhile; " + _ONE_THREAD)
    g.busy += 1
    return 0


cdef inline void _read_release(_Guard g) noexcept:
    g.busy -= 1


# ---------------------------------------------------------------------------------------
# holds taken from Python (snapshots, saves): the same guards as the C calls
# ---------------------------------------------------------------------------------------

def _hold(obj, bint write=False):
    """Mark ``obj`` in use exactly as the C calls do, or raise RuntimeError at once.

    write=False: a snapshot read (a State/StateBatch guard or a network's weights shared
    with steps and other reads; a trainer: its state and its network). write=True: as a
    step of the state, a trainer call (its state and weights exclusive) or load_state_dict.
    Release with ``_unhold(obj, write)``. Used by copies, pickles and saves, and by tests
    to make an operation be "in flight" without any timing."""
    cdef _Trainer tr
    cdef _Network net
    if isinstance(obj, (State, StateBatch)):
        g = (<State>obj).guard if isinstance(obj, State) else (<StateBatch>obj).guard
        if write:
            _acquire(g)
        else:
            _read_acquire(g)
    elif isinstance(obj, _Trainer):
        tr = obj
        _ready(tr)
        if write:
            tr._net._enter_write(tr._state)
        else:
            tr._net._begin_read()
            try:
                _read_acquire(tr._state.guard)
            except BaseException:
                tr._net._end_read()
                raise
    elif isinstance(obj, _Network):
        net = obj
        if write:
            net._begin_write()
        else:
            net._begin_read()
    elif isinstance(obj, _Guard):
        (<_Guard>obj)._enter(write, "this object")
    else:
        raise TypeError(f"cannot hold a {type(obj).__name__}")


def _unhold(obj, bint write=False):
    """Release a ``_hold(obj, write)``."""
    cdef _Trainer tr
    if isinstance(obj, (State, StateBatch)):
        g = (<State>obj).guard if isinstance(obj, State) else (<StateBatch>obj).guard
        if write:
            (<_Guard>g).busy = 0
        else:
            _read_release(g)
    elif isinstance(obj, _Trainer):
        tr = obj
        if write:
            tr._net._leave_write(tr._state.guard)
        else:
            _read_release(tr._state.guard)
            tr._net._end_read()
    elif isinstance(obj, _Network):
        if write:
            (<_Network>obj)._end_write()
        else:
            (<_Network>obj)._end_read()
    elif isinstance(obj, _Guard):
        (<_Guard>obj)._exit(write)


class _Holding:
    """Context manager of ``_holding``: takes every hold or none."""

    def __init__(self, objs, write):
        self.objs = []
        seen = set()
        for o in objs:                 # one hold per object (a shared network once)
            if o is not None and id(o) not in seen:
                seen.add(id(o))
                self.objs.append(o)
        self.write = write
        self.taken = []

    def __enter__(self):
        try:
            for o in self.objs:
                _hold(o, self.write)
                self.taken.append(o)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        while self.taken:
            _unhold(self.taken.pop(), self.write)
        return False


def _holding(*objs, bint write=False):
    """``with _holding(a, b, ...):`` holds every object (see ``_hold``); None is skipped."""
    return _Holding(objs, write)
