"""The float32 optimizer updates of the C core, checked independently (issue 14, section 7):

* against ``torch.optim`` (SGD, Adam, RMSprop) run in float32 on the same gradients;
* against the documented formulas (streamrnn.optim's docstrings) written here in NumPy
  float32, without the C core or streamrnn.reference (which computes in float64).

The optimizer is isolated from the network's gradient: a sequence of gradients (spanning
1e-6 to 1e3, with exact zeros) is written into the updater's gradient buffer and applied,
so nothing feeds back and the float32 trajectories may differ only by rounding: a few units
in the last place per step. The bound used is ``8 * steps * eps32 * scale`` with scale the
largest magnitude involved (parameters, moments).
"""
from __future__ import annotations

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.sequence import _make_updater

F = np.float32
EPS32 = float(np.finfo(np.float32).eps)
STEPS = 25

OPTS = [
    sr.Adam(lr=1e-2),
    sr.Adam(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
    sr.Adam(lr=1e-3, betas=(0.0, 0.999), eps=1e-30),           # eps tiny but normal
    sr.RMSprop(lr=1e-2),
    sr.RMSprop(lr=1e-3, alpha=0.9, eps=1e-6, momentum=0.7, weight_decay=0.02),
    sr.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    sr.SGD(lr=0.1),
]


def gradients(P, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for t in range(STEPS):
        g = rng.standard_normal(P) * 10.0 ** rng.uniform(-6, 3, P)
        g[rng.random(P) < 0.2] = 0.0            # exact zeros: 0 / (sqrt(0) + eps)
        if t == 3:
            g[:] = 0.0                           # a whole zero gradient
        out.append(g.astype(F))
    return out


def core_trajectory(opt, grads):
    net = sr.GRU(2, 3, output_size=2, dtype="float32", seed=4)
    upd, _, _, _ = _make_updater([net], opt, None, None)
    p0 = net.parameters().copy()
    traj = []
    for g in grads:
        upd.zero_grad()
        upd.grad[...] = g
        upd.apply(0.5)
        snap = upd._snapshot()
        traj.append((net.parameters().copy(), snap["m1"].copy(), snap["m2"].copy()))
    assert upd._stats()["updates"] == len(grads) and upd._stats()["skipped"] == 0
    return p0, traj


def numpy_float32(opt, p0, grads):
    """The formulas of streamrnn.optim's docstrings (= torch.optim's), in float32 NumPy;
    scalar coefficients (bias corrections) in float64, then rounded once to float32."""
    p = p0.astype(F).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    wd = F(opt.weight_decay)
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(F)
        if opt.weight_decay:
            g = g + wd * p
        if opt.kind == "sgd":
            if opt.momentum:
                m = g.copy() if t == 1 else F(opt.momentum) * m + g
                d = g + F(opt.momentum) * m if opt.nesterov else m
            else:
                d = g
            p = p - F(opt.lr) * d
        elif opt.kind == "adam":
            b1, b2 = opt.betas
            m = m + F(1 - b1) * (g - m)
            v = F(b2) * v + F(1 - b2) * g * g
            step = F(opt.lr / (1 - b1 ** t))
            bc2s = F(np.sqrt(1 - b2 ** t))
            p = p - step * (m / (np.sqrt(v) / bc2s + F(opt.eps)))
        else:
            v = F(opt.alpha) * v + F(1 - opt.alpha) * g * g
            avg = np.sqrt(v) + F(opt.eps)
            if opt.momentum:
                m = F(opt.momentum) * m + g / avg
                p = p - F(opt.lr) * m
            else:
                p = p - F(opt.lr) * (g / avg)
        assert p.dtype == m.dtype == v.dtype == F
        out.append((p.copy(), m.copy(), v.copy()))
    return out


def torch_float32(torch, opt, p0, grads):
    p = torch.tensor(p0.copy(), dtype=torch.float32, requires_grad=True)
    if opt.kind == "sgd":
        topt = torch.optim.SGD([p], lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                               weight_decay=opt.weight_decay, foreach=False)
    elif opt.kind == "adam":
        topt = torch.optim.Adam([p], lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                weight_decay=opt.weight_decay, foreach=False)
    else:
        topt = torch.optim.RMSprop([p], lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                                   momentum=opt.momentum, weight_decay=opt.weight_decay,
                                   foreach=False)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        topt.step()
        st = topt.state[p]
        m1 = st.get("exp_avg", st.get("momentum_buffer"))
        m2 = st.get("exp_avg_sq", st.get("square_avg"))
        out.append((p.detach().numpy().copy(),
                    None if m1 is None else m1.numpy().copy(),
                    None if m2 is None else m2.numpy().copy()))
    return out


def compare(opt, core, other, what):
    mom = getattr(opt, "momentum", 0.0) != 0
    used = {"sgd": (True, mom, False),
            "adam": (True, True, True),
            "rmsprop": (True, mom, True)}[opt.kind]
    for t, (c, o) in enumerate(zip(core, other), start=1):
        for name, cu, ou, on in zip(("parameters", "m1", "m2"), c, o, used):
            if not on:
                continue
            assert cu.dtype == np.float32
            ou = np.asarray(ou)
            scale = max(1.0, float(np.abs(ou).max()))
            err = float(np.abs(cu.astype(np.float64) - ou.astype(np.float64)).max())
            assert err <= 8 * t * EPS32 * scale, \
                f"{opt!r} vs {what}: {name} after step {t} differs by {err:.3g}"
    # and the updates did move the parameters (not a comparison of two no-ops)
    assert np.abs(core[-1][0] - core[0][0]).max() > 1e-4 or opt.kind == "sgd"


@pytest.mark.parametrize("opt", OPTS, ids=repr)
def test_float32_updates_equal_the_formulas_in_numpy_float32(opt):
    p0, core = core_trajectory(opt, gradients(p0_size()))
    compare(opt, core, numpy_float32(opt, p0, gradients(p0_size())), "numpy float32")


@pytest.mark.parametrize("opt", OPTS, ids=repr)
def test_float32_updates_equal_torch_optim_float32(opt):
    torch = pytest.importorskip("torch")
    grads = gradients(p0_size())
    p0, core = core_trajectory(opt, grads)
    compare(opt, core, torch_float32(torch, opt, p0, grads), "torch.optim float32")


def p0_size():
    return int(sr.GRU(2, 3, output_size=2, dtype="float32").parameters().shape[0])


def test_the_check_can_tell_a_wrong_formula():
    """The comparison is tight enough to see a float32 slip: the same Adam with its second
    moment decay changed in the 4th decimal is caught."""
    opt = sr.Adam(lr=1e-2)
    grads = gradients(p0_size())
    p0, core = core_trajectory(opt, grads)
    wrong = numpy_float32(sr.Adam(lr=1e-2, betas=(0.9, 0.9991)), p0, grads)
    with pytest.raises(AssertionError, match="differs"):
        compare(opt, core, wrong, "a wrong formula")
