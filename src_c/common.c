/* Sizes, offsets and status names shared by the float and double cores. */
#include "streamrnn.h"

const char *srnn_status_name(int status)
{
    switch (status) {
    case SRNN_OK: return "ok";
    case SRNN_ERR_NULL: return "a required buffer is NULL";
    case SRNN_ERR_DIMS: return "invalid sizes";
    case SRNN_ERR_CELL: return "unknown cell kind";
    case SRNN_ERR_NONFINITE_X: return "the input holds NaN or inf";
    case SRNN_ERR_INDEX_RANGE: return "a stream index is out of range";
    case SRNN_ERR_INDEX_DUP: return "a stream index appears twice";
    case SRNN_ERR_NONFINITE_Y: return "a target holds inf";
    case SRNN_ERR_CLASS_RANGE: return "a class index is out of range";
    case SRNN_ERR_CONFIG: return "invalid trainer or optimizer settings";
    case SRNN_ERR_NO_PENDING: return "no step is waiting for a target";
    default: return "unknown status";
    }
}

int srnn_gates(int cell)
{
    switch (cell) {
    case SRNN_RNN_TANH:
    case SRNN_RNN_RELU: return 1;
    case SRNN_LSTM:
    case SRNN_LSTM_PEEP: return 4;
    case SRNN_GRU:
    case SRNN_GRU_RB: return 3;
    default: return 0;
    }
}

int srnn_has_c(int cell)
{
    return cell == SRNN_LSTM || cell == SRNN_LSTM_PEEP;
}

size_t srnn_layer_params(int cell, int din, int H)
{
    size_t gh = (size_t)srnn_gates(cell) * (size_t)H;
    return gh * (size_t)din + gh * (size_t)H + 2 * gh
           + (cell == SRNN_LSTM_PEEP ? 3 * (size_t)H : 0);
}

/* Sizes must keep every product below 2^31 (the BLAS integer) and a flat buffer
 * length below SIZE_MAX; 2^30 per dimension product is ample for a streaming RNN. */
#define SRNN_MAX_DIM (1 << 20)

/* Every size check of a network, one direction (ndir 1) or two (ndir 2). */
int srnn_check_dims(const srnn_dims *d, int ndir)
{
    if (!d) return SRNN_ERR_NULL;
    if (srnn_gates(d->cell) == 0) return SRNN_ERR_CELL;
    if (d->num_layers < 1 || d->input_size < 1 || d->hidden_size < 1 || d->output_size < 0)
        return SRNN_ERR_DIMS;
    if (d->num_layers > 4096 || d->input_size > SRNN_MAX_DIM || d->hidden_size > SRNN_MAX_DIM / 4
        || d->output_size > SRNN_MAX_DIM)
        return SRNN_ERR_DIMS;
    if (ndir != 1 && ndir != 2) return SRNN_ERR_DIMS;
    {
        /* every weight matrix must be addressable with a BLAS int; layers above the first
         * and the head read ndir*H */
        double gh = 4.0 * d->hidden_size, nh = (double)ndir * d->hidden_size;
        double big = gh * (d->input_size > nh ? d->input_size : nh);
        if (big > 2147483647.0 || (double)d->output_size * nh > 2147483647.0)
            return SRNN_ERR_DIMS;
    }
    return SRNN_OK;
}

/* Parameters of one direction of one layer: weight_ih, weight_hh, bias_ih, bias_hh
 * (and weight_peephole for SRNN_LSTM_PEEP). */
static size_t dir_params(const srnn_dims *d, int ndir, int layer)
{
    int din = layer == 0 ? d->input_size : ndir * d->hidden_size;
    return srnn_layer_params(d->cell, din, d->hidden_size);
}

size_t srnn_layer_offset(const srnn_dims *d, int ndir, int layer, int dir)
{
    size_t off = 0;
    int k;
    for (k = 0; k < layer && k < d->num_layers; ++k) off += (size_t)ndir * dir_params(d, ndir, k);
    if (layer < d->num_layers) off += (size_t)dir * dir_params(d, ndir, layer);
    return off;
}

size_t srnn_num_params(const srnn_dims *d, int ndir)
{
    size_t n = srnn_layer_offset(d, ndir, d->num_layers, 0);
    if (d->output_size > 0)
        n += (size_t)d->output_size * ((size_t)ndir * (size_t)d->hidden_size + 1);
    return n;
}

int srnn_out_size(const srnn_dims *d, int ndir)
{
    return d->output_size > 0 ? d->output_size : ndir * d->hidden_size;
}

int srnn_fused_rows(int cell, int H)
{
    return cell == SRNN_GRU || cell == SRNN_GRU_RB ? 2 * H : srnn_gates(cell) * H;
}


/* Single step: gates (G*H) and, for GRU, the recurrent part kept apart (G*H). */
size_t srnn_step_work(const srnn_dims *d)
{
    return 2 * (size_t)srnn_gates(d->cell) * (size_t)d->hidden_size;
}

/* One block of mb = min(m, SRNN_MANY_BLOCK) streams: gates (mb, 2*G*H), layer input (mb, H),
 * h (mb, H), c (mb, H); for m >= 1 at least srnn_step_work (the few-streams path). */
size_t srnn_many_work(const srnn_dims *d, size_t m)
{
    size_t H = (size_t)d->hidden_size, mb = m < SRNN_MANY_BLOCK ? m : SRNN_MANY_BLOCK;
    return mb * (2 * (size_t)srnn_gates(d->cell) * H + 4 * H);
}
