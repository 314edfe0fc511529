/*
 * The sampler's uniform stream, pure C with no Python API: the same doubles as
 *
 *     numpy.random.default_rng(numpy.random.SeedSequence(entropy)).random(count)
 *
 * for a sequence of non-negative integers below 2**64, bit for bit, in a fraction of the time it takes
 * numpy to build a SeedSequence and a Generator (the larger part of drawing a sample's parameters).
 * numpy's algorithms, as documented: SeedSequence's hash mixing of 32-bit words (pool of 4 words),
 * PCG64 (128-bit LCG, XSL-RR output) seeded from four 64-bit words of the pool (stream.c), and doubles
 * made from the top 53 bits of each output; the batch of samples that sampling.sample_params_batch
 * draws from these streams (batch.c); and the fixed blocks of many streams that differ in one word, which
 * the views' sampler draws (blocks.c). _uniforms.c binds them to Python; tests/test_sampling.py compares
 * the stream with numpy.
 */

#ifndef SID_UNIFORMS_H
#define SID_UNIFORMS_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__SIZEOF_INT128__)
#error "a compiler with 128-bit integers is needed; without one, sampling.py uses numpy instead"
#endif

typedef unsigned __int128 sid_u128;

/* The most integers of a stream's entropy. */
#define SID_MAX_ENTROPY 8

/* ------------------------------------------------------------------------------------------------ */
/* The stream (stream.c)                                                                             */
/* ------------------------------------------------------------------------------------------------ */

typedef struct {
    sid_u128 state, inc;
} sid_pcg64;

#define SID_PCG_MULTIPLIER (((sid_u128)2549297995355413924ULL << 64) | 4865540595714422341ULL)

/* The stream of SeedSequence(entropy), `count` (at most SID_MAX_ENTROPY) integers. */
void sid_seed_stream(sid_pcg64 *rng, const uint64_t *entropy, int count);

static inline void sid_pcg64_step(sid_pcg64 *rng) { rng->state = rng->state * SID_PCG_MULTIPLIER + rng->inc; }

static inline uint64_t sid_pcg64_next(sid_pcg64 *rng) {
    sid_pcg64_step(rng);
    uint64_t folded = (uint64_t)(rng->state >> 64) ^ (uint64_t)rng->state;
    unsigned rot = (unsigned)(rng->state >> 122);
    return (folded >> rot) | (folded << ((64 - rot) & 63));
}

/* numpy's Generator.random(): the top 53 bits of an output, scaled to [0, 1). */
static inline double sid_next_double(sid_pcg64 *rng) {
    return (double)(sid_pcg64_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------------------------------------ */
/* A batch of samples (batch.c)                                                                      */
/* ------------------------------------------------------------------------------------------------ */

/* What sampling.sample_params_batch asks for: for each index i of `indices`, the stream of
 * SeedSequence([seed, epoch, i]); its first `block` doubles go to row k of `uniforms` (count x block).
 * With num_sources > 1 the sample's source is drawn from the block's last double, else it is 0; it goes
 * to `sources[k]`. The resized-crop box is then drawn from the rest of the stream, retried until it fits
 * the source's region (`regions`, num_sources x (width, height), each at least 1x1), and written to row k
 * of `boxes` (count x (top, left, height, width)). */
typedef struct {
    uint64_t seed, epoch;
    const int64_t *indices;
    ptrdiff_t count, block;
    const int64_t *regions;
    int64_t num_sources;
    double area_lo, area_hi; /* the area fraction's range */
    double log_lo, log_hi;   /* the log aspect ratio's range */
    int64_t max_attempts;
    double *uniforms;
    int64_t *boxes, *sources;
} sid_batch;

/* Draw the batch; returns -1, or the position k of the first sample whose box did not fit in
 * max_attempts attempts (the rows after it are not written). */
ptrdiff_t sid_sample_batch(const sid_batch *batch);

/* ------------------------------------------------------------------------------------------------ */
/* Fixed blocks of many streams (blocks.c)                                                          */
/* ------------------------------------------------------------------------------------------------ */

/* What sampling.uniform_blocks asks for: for each index i of `indices` (non-negative), the first `block`
 * doubles of the stream of SeedSequence([*prefix, i, *suffix]) go to row k of `out` (count x block).
 * prefix_len + 1 + suffix_len is at most SID_MAX_ENTROPY. */
typedef struct {
    uint64_t prefix[SID_MAX_ENTROPY], suffix[SID_MAX_ENTROPY];
    int prefix_len, suffix_len;
    const int64_t *indices;
    ptrdiff_t count, block;
    double *out;
} sid_blocks;

void sid_stream_blocks(const sid_blocks *blocks);

#endif
