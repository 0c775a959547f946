/* Forward pass for float and double, from the one templated source cell.inc + forward.inc. */
#include <math.h>
#include <string.h>
#include "streamrnn.h"
#include "fastmath.h"

#define SRNN_DOUBLE 0
#include "real.h"
#include "cell.inc"
#include "forward.inc"
#include "real_undef.h"

#define SRNN_DOUBLE 1
#include "real.h"
#include "cell.inc"
#include "forward.inc"
#include "real_undef.h"

/* See streamrnn.h. Type-independent: the sizes of the products a network's calls make. */
int srnn_wants_blas(const srnn_dims *d, int ndir)
{
    const double G = (double)srnn_gates(d->cell), H = (double)d->hidden_size;
    int k;
    for (k = 0; k < d->num_layers; ++k) {
        const double din = k == 0 ? (double)d->input_size : (double)ndir * H;
        if (G * H * (din + H) > (double)SRNN_OWN_GEMV_MAX) return 1;
        if ((double)SRNN_MANY_BLOCK * G * H * (din > H ? din : H) > (double)SRNN_OWN_GEMM_MAX)
            return 1;
    }
    if ((double)d->output_size * (double)ndir * H > (double)SRNN_OWN_GEMV_MAX) return 1;
    return 0;
}
