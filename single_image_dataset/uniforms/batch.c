/*
 * A batch of samples' uniforms and resized-crop boxes (see uniforms.h): the resized crop is
 * sampling.sample_resized_crop, operation for operation (the same libm exp and sqrt as Python's math
 * module, round-half-even as round()).
 */

#include <math.h>

#include "uniforms.h"

static inline double uniform_in(double u, double lo, double hi) { return lo + (hi - lo) * u; }

/* sampling.uniform_int: an integer in [0, n) from u in [0, 1). */
static inline int64_t randint_below(double u, int64_t n) {
    int64_t v = (int64_t)(u * (double)n);
    return v < n - 1 ? v : n - 1;
}

/* Writes (top, left, height, width) of a box in a width x height region; returns 0, or -1 when no box
 * fitted in max_attempts. */
static int resized_crop_box(sid_pcg64 *rng, const sid_batch *b, int64_t width, int64_t height, int64_t box[4]) {
    double area = (double)(width * height);
    for (int64_t attempt = 0; attempt < b->max_attempts; attempt++) {
        double u_area = sid_next_double(rng), u_ratio = sid_next_double(rng);
        double target = area * uniform_in(u_area, b->area_lo, b->area_hi);
        double aspect = exp(uniform_in(u_ratio, b->log_lo, b->log_hi));
        int64_t w = (int64_t)rint(sqrt(target * aspect));
        int64_t h = (int64_t)rint(sqrt(target / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            double u_top = sid_next_double(rng), u_left = sid_next_double(rng);
            box[0] = randint_below(u_top, height - h + 1);
            box[1] = randint_below(u_left, width - w + 1);
            box[2] = h;
            box[3] = w;
            return 0;
        }
    }
    return -1;
}

ptrdiff_t sid_sample_batch(const sid_batch *b) {
    for (ptrdiff_t k = 0; k < b->count; k++) {
        uint64_t entropy[3] = {b->seed, b->epoch, (uint64_t)b->indices[k]};
        sid_pcg64 rng;
        sid_seed_stream(&rng, entropy, 3);
        double *row = b->uniforms + k * b->block;
        for (ptrdiff_t j = 0; j < b->block; j++) row[j] = sid_next_double(&rng);
        int64_t source = b->num_sources > 1 ? randint_below(row[b->block - 1], b->num_sources) : 0;
        b->sources[k] = source;
        if (resized_crop_box(&rng, b, b->regions[2 * source], b->regions[2 * source + 1], b->boxes + 4 * k) < 0)
            return k;
    }
    return -1;
}
