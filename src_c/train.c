/* Online training (TBPTT, losses, clipping, optimizers) for float and double, from the
 * templated sources cell.inc + backward.inc + train.inc, and whole-window forward/backward
 * (bidirectional layers, sequence training) from seq.inc. */
#include <math.h>
#include <string.h>
#include "streamrnn.h"
#include "fastmath.h"

/*
 * Layout of one ring slot (one recorded step), in elements:
 *   x (D) | y (OUT) prediction | tgt (OUT) mse target | layer 0 | ... | layer L-1
 * and of each layer's part (per_layer = 4H + G*H):
 *   hp (H) h_{t-1} | cp (H) c_{t-1} | g (G*H) gates | ex (H) LSTM tanh(c_t), GRU W_hn h+b_hn
 *   | hn (H) h_t
 * Layout of the training scratch, in elements (w_* offsets); it depends on k2.
 */
typedef struct rec_layout {
    int out, GH;
    size_t x, y, tgt, layer0, per_layer, size;
    size_t hp, cp, g, ex, hn;
    size_t w_gh, w_dh, w_dc, w_dtot, w_direct, w_dai, w_dah, w_dy;
    size_t w_ph, w_pc, w_pwork, w_size;
} rec_layout;

static rec_layout make_layout(const srnn_dims *d, int k2)
{
    rec_layout l;
    const size_t H = (size_t)d->hidden_size, LH = (size_t)d->num_layers * H;
    l.out = srnn_out_size(d, 1);
    l.GH = srnn_gates(d->cell) * d->hidden_size;
    l.x = 0;
    l.y = (size_t)d->input_size;
    l.tgt = l.y + (size_t)l.out;
    l.layer0 = l.tgt + (size_t)l.out;
    l.per_layer = 4 * H + (size_t)l.GH;
    l.size = l.layer0 + (size_t)d->num_layers * l.per_layer;
    l.hp = 0;
    l.cp = H;
    l.g = 2 * H;
    l.ex = 2 * H + (size_t)l.GH;
    l.hn = l.ex + H;
    l.w_gh = 0;
    l.w_dh = l.w_gh + (size_t)l.GH;
    l.w_dc = l.w_dh + H;
    l.w_dtot = l.w_dc + H;
    l.w_direct = l.w_dtot + H;
    /* one layer's dLoss/d(pre-activation) of every ring slot, (k2, G*H) each, so that the
     * weight gradients of a whole window are two matrix products per layer */
    l.w_dai = l.w_direct + H;
    l.w_dah = l.w_dai + (size_t)k2 * (size_t)l.GH;
    l.w_dy = l.w_dah + (size_t)k2 * (size_t)l.GH;
    l.w_ph = l.w_dy + (size_t)l.out;
    l.w_pc = l.w_ph + LH;
    l.w_pwork = l.w_pc + LH;
    l.w_size = l.w_pwork + srnn_step_work(d);
    return l;
}

size_t srnn_record_size(const srnn_dims *d) { return make_layout(d, 1).size; }

size_t srnn_train_work(const srnn_dims *d, int k2) { return make_layout(d, k2 < 1 ? 1 : k2).w_size; }

const char *srnn_record_field(const srnn_dims *d, int f, size_t *offset, size_t *count,
                              size_t *length, size_t *stride)
{
    static const char *const names[SRNN_RECORD_FIELDS] = {"x", "y", "tgt", "hp", "cp", "g",
                                                           "ex", "hn"};
    rec_layout l;
    size_t H, off[SRNN_RECORD_FIELDS], len[SRNN_RECORD_FIELDS];
    if (!d || f < 0 || f >= SRNN_RECORD_FIELDS) return NULL;
    l = make_layout(d, 1);
    H = (size_t)d->hidden_size;
    off[0] = l.x; len[0] = (size_t)d->input_size;
    off[1] = l.y; len[1] = (size_t)l.out;
    off[2] = l.tgt; len[2] = (size_t)l.out;
    off[3] = l.layer0 + l.hp; len[3] = H;
    off[4] = l.layer0 + l.cp; len[4] = H;
    off[5] = l.layer0 + l.g; len[5] = (size_t)l.GH;
    off[6] = l.layer0 + l.ex; len[6] = H;
    off[7] = l.layer0 + l.hn; len[7] = H;
    *offset = off[f];
    *length = len[f];
    *count = f < 3 ? 1 : (size_t)d->num_layers;
    *stride = f < 3 ? l.size : l.per_layer;
    return names[f];
}

#define SRNN_MAX_COUNT ((int64_t)1 << 62)

static int finite_nonneg(double v) { return isfinite(v) && v >= 0; }

int srnn_train_check(const srnn_dims *d, const srnn_trainer *t)
{
    int st;
    if (!d || !t) return SRNN_ERR_NULL;
    if ((st = srnn_check_dims(d, 1)) != SRNN_OK) return st;
    if (t->set.loss != SRNN_LOSS_MSE && t->set.loss != SRNN_LOSS_XENT) return SRNN_ERR_CONFIG;
    if (t->set.k1 < 1 || t->set.k2 < t->set.k1) return SRNN_ERR_CONFIG;
    if (!finite_nonneg(t->set.clip_value) || !finite_nonneg(t->set.clip_norm)) return SRNN_ERR_CONFIG;
    if (!finite_nonneg(t->set.lr) || !finite_nonneg(t->set.momentum) || !finite_nonneg(t->set.weight_decay))
        return SRNN_ERR_CONFIG;
    switch (t->set.opt) {
    case SRNN_OPT_SGD:
        if (t->set.nesterov && t->set.momentum <= 0) return SRNN_ERR_CONFIG;
        break;
    case SRNN_OPT_ADAM:
        if (!(t->set.beta1 >= 0 && t->set.beta1 < 1 && t->set.beta2 >= 0 && t->set.beta2 < 1)) return SRNN_ERR_CONFIG;
        if (!(isfinite(t->set.eps) && t->set.eps > 0)) return SRNN_ERR_CONFIG;
        break;
    case SRNN_OPT_RMSPROP:
        if (!(t->set.alpha >= 0 && t->set.alpha < 1)) return SRNN_ERR_CONFIG;
        if (!(isfinite(t->set.eps) && t->set.eps > 0)) return SRNN_ERR_CONFIG;
        break;
    default:
        return SRNN_ERR_CONFIG;
    }
    if (t->head < 0 || t->head >= t->set.k2 || t->filled < 0 || t->filled > t->set.k2
        || t->since_update < 0 || t->since_update >= t->set.k1
        || (t->pending != 0 && t->pending != 1) || (t->pending && t->filled < 1))
        return SRNN_ERR_CONFIG;
    /* the ring fills from slot 0 after a reset (head starts at k2 - 1): until it is full, the
     * valid slots are exactly [0, filled), which the weight-gradient products of
     * tbptt_update read as one block. NumPy: head == (filled - 1) % k2 unless filled == k2. */
    if (t->filled < t->set.k2 && t->head != (t->filled + t->set.k2 - 1) % t->set.k2) return SRNN_ERR_CONFIG;
    if (t->steps < t->filled || t->updates < 0 || t->skipped < 0 || t->opt_steps < 0
        || t->loss_count < 0)
        return SRNN_ERR_CONFIG;
    /* the counters are incremented (signed: overflow would be undefined); 2^62 steps are
     * out of reach, so larger values can only come from a crafted snapshot */
    if (t->steps > SRNN_MAX_COUNT || t->updates > SRNN_MAX_COUNT || t->skipped > SRNN_MAX_COUNT
        || t->opt_steps > SRNN_MAX_COUNT || t->loss_count > SRNN_MAX_COUNT)
        return SRNN_ERR_CONFIG;
    /* one ring slot is a BLAS leading dimension (int) in the weight-gradient products */
    if (srnn_record_size(d) > 2147483647u) return SRNN_ERR_DIMS;
    return SRNN_OK;
}

/* srnn_train_check, and every ring tag (k2,) in the range tbptt_update indexes with it:
 * -1 (no target) or, mse, 0 (a target); cross-entropy, a class index in [0, O|H).
 * NumPy: ((tags >= -1) & (tags <= (0 if mse else out - 1))).all(). */
int srnn_train_check_ring(const srnn_dims *d, const srnn_trainer *t, const int64_t *tags)
{
    int st;
    int64_t j, hi;
    if ((st = srnn_train_check(d, t)) != SRNN_OK) return st;
    if (!tags) return SRNN_ERR_NULL;
    hi = t->set.loss == SRNN_LOSS_MSE ? 0 : (int64_t)srnn_out_size(d, 1) - 1;
    for (j = 0; j < t->set.k2; ++j)
        if (tags[j] < -1 || tags[j] > hi) return SRNN_ERR_CONFIG;
    return SRNN_OK;
}

void srnn_train_reset(srnn_trainer *t)
{
    t->steps = 0;
    t->since_update = 0;
    t->pending = 0;
    t->filled = 0;
    t->head = t->set.k2 - 1;
    t->loss_count = 0;
    t->loss_sum = 0;
}


/* ------------------------------------------------------------------ whole windows */

/*
 * Layout of a window's cache and scratch (elements), for T steps:
 *   rec (L, ndir, T, PL), one record per layer, direction and step, PL = 3H + G*H:
 *       hp (H) h entering the step | cp (H) c entering it (LSTM) | g (G*H) gates (first the
 *       input part of the pre-activations, then the post-activation gates) | ex (H) LSTM
 *       tanh(c_t), GRU W_hn h + b_hn
 *   Yl (L, T, ndir*H) every layer's output [h_fwd | h_bwd] at each step
 *   dA, dB (T, ndir*H) dLoss/d(a layer's output), ping-pong between layers
 *   DAI, DAH (T, G*H) one direction's dLoss/d(input / recurrent pre-activations)
 *   z, dz (ndir*H) many-to-one readout and its gradient
 *   h, c, dh, dc, dtot, direct (H each), gh (G*H) per-step scratch
 */
typedef struct seq_layout {
    size_t PL, hp, cp, g, ex;
    size_t rec, Yl, dA, dB, DAI, DAH, z, dz, h, c, dh, dc, dtot, direct, gh, size;
} seq_layout;

static seq_layout make_seq_layout(const srnn_dims *d, int ndir, size_t T)
{
    seq_layout l;
    const size_t H = (size_t)d->hidden_size, GH = (size_t)srnn_gates(d->cell) * H;
    const size_t L = (size_t)d->num_layers, nH = (size_t)ndir * H;
    l.PL = 3 * H + GH;
    l.hp = 0;
    l.cp = H;
    l.g = 2 * H;
    l.ex = 2 * H + GH;
    l.rec = 0;
    l.Yl = l.rec + L * (size_t)ndir * T * l.PL;
    l.dA = l.Yl + L * T * nH;
    l.dB = l.dA + T * nH;
    l.DAI = l.dB + T * nH;
    l.DAH = l.DAI + T * GH;
    l.z = l.DAH + T * GH;
    l.dz = l.z + nH;
    l.h = l.dz + nH;
    l.c = l.h + H;
    l.dh = l.c + H;
    l.dc = l.dh + H;
    l.dtot = l.dc + H;
    l.direct = l.dtot + H;
    l.gh = l.direct + H;
    l.size = l.gh + GH;
    return l;
}

size_t srnn_seq_work(const srnn_dims *d, int ndir, size_t T)
{
    return make_seq_layout(d, ndir, T).size;
}

#define SRNN_DOUBLE 0
#include "real.h"
#include "cell.inc"
#include "backward.inc"
#include "train.inc"
#include "seq.inc"
#include "real_undef.h"

#define SRNN_DOUBLE 1
#include "real.h"
#include "cell.inc"
#include "backward.inc"
#include "train.inc"
#include "seq.inc"
#include "real_undef.h"
