/* A sample's geometry as the reference renders it, in two resamplings (see kernels.h): PIL's
 * antialiased resize of the crop box onto the resized crop's grid, computed only where the warp will
 * read it, then the bilinear warp (warp.c) from that grid. Portable and AVX2, the same bytes. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#if SID_X86
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------------------------------------ */
/* PIL's filters and coefficients (Resample.c: precompute_coeffs)                                   */
/* ------------------------------------------------------------------------------------------------ */

static const double PI = 3.14159265358979323846;

/* Single precision, the branches as selects, so that the compiler vectorises them over the outputs
 * (the weights end up in 6-bit fixed point). */
static inline float bilinear_filter(float x) {
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static inline float bicubic_filter(float x) {
    const float a = -0.5f;
    x = fabsf(x);
    const float near = ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f, far = (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
    const float outer = x < 2.0f ? far : 0.0f;
    return x < 1.0f ? near : outer;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= PI;
    return sin(x) / x;
}

static float lanczos_filter(float x) { return -3.0f <= x && x < 3.0f ? (float)(sinc(x) * sinc(x / 3.0)) : 0.0f; }

static const double SUPPORT[] = {1.0, 2.0, 3.0};

/* The most taps an output of a resize of `length` pixels onto `side` can have (PIL's ksize). */
static int max_taps(double length, int side, int filter) {
    double scale = length / side, support = SUPPORT[filter] * (scale > 1.0 ? scale : 1.0);
    return (int)ceil(support) * 2 + 1;
}

/* Weights in fixed point with WEIGHT_BITS fraction bits, as signed bytes: the vector code multiplies
 * them with the pixels' bytes, a pair of taps per instruction (maddubs), into 16-bit sums. Their
 * absolute values sum to less than 2 (128), so that no sum can leave 16 bits (255 times 127 at most). */
#define WEIGHT_BITS 6
#define WEIGHT_ONE (1 << WEIGHT_BITS)

/* The floats of scratch memory that axis_taps needs for `outputs` outputs of at most `stride` taps. */
static size_t taps_scratch(int outputs, int stride) { return (size_t)outputs * (stride + 7); }

/* An output's weight, float `w` times `norm` (1 over the sum), in fixed point, rounded half up (the
 * offset makes the truncation a floor) and within a byte. */
static inline int fixed_weight(float w, float norm) {
    const int v = (int)(w * norm * (float)WEIGHT_ONE + 256.5f) - 256;
    return v < -128 ? -128 : v > 127 ? 127 : v;
}

/* The taps of outputs q0 .. q1 - 1 of PIL's resize of [b0, b1) onto `side` pixels, reading only pixels
 * [lo, hi): output q (clamped to [0, side - 1], so that the grid's border repeats its edge as the
 * bilinear warp reads it) reads pixels first[i] .. first[i] + count[i] - 1, tap t with the weight
 * coef[t * (q1 - q0) + i] (0 for t from count[i] to `stride`): PIL's filter, normalised, made to sum
 * to 1 exactly (so that a flat region stays flat) at the tap nearest the centre, the largest. A
 * filter that the box's edge cuts so steeply that their absolute values would sum to 2 or more
 * loses its negative lobes. Output by output, but loop by loop over all the outputs, with selects
 * for the branches, so that the compiler vectorises the loops. */
static inline __attribute__((always_inline)) void axis_taps_body(double b0, double b1, int side, int lo, int hi,
                                                                 int filter, int q0, int q1, int stride, int *first,
                                                                 int *count, int8_t *coef, float *scratch) {
    const int m = q1 - q0;
    const double scale = (b1 - b0) / side, filterscale = scale > 1.0 ? scale : 1.0;
    const double support = SUPPORT[filter] * filterscale;
    const float inv = (float)(1.0 / filterscale);
    double *center = (double *)scratch; /* loops of one type each, so that they vectorise */
    float *at = scratch + 2 * m, *norm = at + m, *w = norm + m; /* w[t * m + i]: tap t of output i */
    int *total = (int *)(w + (size_t)stride * m), *absolute = total + m, *nearest = absolute + m;
    for (int i = 0; i < m; i++) {
        const int q = q0 + i < 0 ? 0 : q0 + i >= side ? side - 1 : q0 + i;
        center[i] = b0 + (q + 0.5) * scale;
    }
    for (int i = 0; i < m; i++) {
        int xmin = (int)(center[i] - support + 0.5), xmax = (int)(center[i] + support + 0.5);
        xmin = xmin < lo ? lo : xmin;
        xmax = xmax > hi ? hi : xmax;
        first[i] = xmin;
        count[i] = xmax - xmin < stride ? xmax - xmin : stride;
    }
    for (int i = 0; i < m; i++) {
        at[i] = (float)(first[i] - center[i] + 0.5); /* tap t is at t + at[i] from the centre */
        norm[i] = 0.0f;
        total[i] = absolute[i] = 0;
    }
    for (int t = 0; t < stride; t++) {
        float *wt = w + (size_t)t * m;
        switch (filter) { /* one loop per filter, so that the choice is not made per tap */
        case SID_BILINEAR:
            for (int i = 0; i < m; i++) {
                const float v = bilinear_filter(((float)t + at[i]) * inv);
                wt[i] = t < count[i] ? v : 0.0f;
            }
            break;
        case SID_BICUBIC:
            for (int i = 0; i < m; i++) {
                const float v = bicubic_filter(((float)t + at[i]) * inv);
                wt[i] = t < count[i] ? v : 0.0f;
            }
            break;
        default:
            for (int i = 0; i < m; i++) {
                const float v = lanczos_filter(((float)t + at[i]) * inv);
                wt[i] = t < count[i] ? v : 0.0f;
            }
        }
        for (int i = 0; i < m; i++) norm[i] += wt[i];
    }
    for (int i = 0; i < m; i++) {
        norm[i] = norm[i] != 0.0f ? 1.0f / norm[i] : 0.0f;
        const int near = (int)(0.5f - at[i]); /* the tap nearest the centre, the largest */
        nearest[i] = near < 0 ? 0 : near >= count[i] ? count[i] - 1 : near;
    }
    for (int t = 0; t < stride; t++) {
        const float *wt = w + (size_t)t * m;
        int8_t *ct = coef + (size_t)t * m;
        for (int i = 0; i < m; i++) {
            const int v = fixed_weight(wt[i], norm[i]);
            ct[i] = (int8_t)v;
            total[i] += v;
            absolute[i] += v < 0 ? -v : v;
        }
    }
    for (int i = 0; i < m; i++) {
        if (norm[i] == 0.0f || absolute[i] + abs(WEIGHT_ONE - total[i]) < 2 * WEIGHT_ONE) continue;
        total[i] = 0; /* rare: drop the negative lobes */
        for (int t = 0; t < count[i]; t++) {
            const int v = w[(size_t)t * m + i] > 0.0f ? fixed_weight(w[(size_t)t * m + i], norm[i]) : 0;
            total[i] += coef[(size_t)t * m + i] = (int8_t)(v > WEIGHT_ONE ? WEIGHT_ONE : v);
        }
    }
    for (int t = 0; t < stride; t++) { /* the remainder at the nearest tap: the weights sum to 1 */
        int8_t *ct = coef + (size_t)t * m;
        for (int i = 0; i < m; i++) {
            const int remainder = norm[i] != 0.0f && t == nearest[i] ? WEIGHT_ONE - total[i] : 0;
            ct[i] = (int8_t)(ct[i] + remainder);
        }
    }
}

static void axis_taps_c(double b0, double b1, int side, int lo, int hi, int filter, int q0, int q1, int stride,
                        int *first, int *count, int8_t *coef, float *scratch) {
    axis_taps_body(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
}

#if SID_X86
SID_AVX2 static void axis_taps_avx2(double b0, double b1, int side, int lo, int hi, int filter, int q0, int q1,
                                    int stride, int *first, int *count, int8_t *coef, float *scratch) {
    axis_taps_body(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
}

SID_AVX512_LOOPS static void axis_taps_avx512(double b0, double b1, int side, int lo, int hi, int filter, int q0,
                                              int q1, int stride, int *first, int *count, int8_t *coef,
                                              float *scratch) {
    axis_taps_body(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
}
#endif

/* axis_taps, compiled for AVX2 where `simd` (the same operations, so the same numbers: the build turns
 * off FMA contraction), so that its loops are vectorised 8 wide. */
static void axis_taps(double b0, double b1, int side, int lo, int hi, int filter, int q0, int q1, int stride,
                      int *first, int *count, int8_t *coef, float *scratch, int simd) {
#if SID_X86
    if (simd >= SID_VECTOR_AVX512) {
        axis_taps_avx512(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
        return;
    }
    if (simd) {
        axis_taps_avx2(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
        return;
    }
#else
    (void)simd;
#endif
    axis_taps_c(b0, b1, side, lo, hi, filter, q0, q1, stride, first, count, coef, scratch);
}

/* ------------------------------------------------------------------------------------------------ */
/* One pass: rows of the output as weighted sums of rows of the input                               */
/* ------------------------------------------------------------------------------------------------ */

/* The arithmetic: the sum of the taps' products (pixel byte times weight), rounded to whole levels
 * and clamped to 0..255. The vector code gets the same numbers in 16 bits (see WEIGHT_BITS). */
static void combine_c(const uint8_t *const *in, const int8_t *c, int count, uint8_t *out, int n) {
    for (int v = 0; v < n; v++) {
        int acc = WEIGHT_ONE / 2;
        for (int t = 0; t < count; t++) acc += in[t][v] * c[t];
        const int r = acc >> WEIGHT_BITS; /* a floor */
        out[v] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}

#if SID_X86
/* The most pairs of taps of the vector code: 16 taps, a reduction by up to 3.5 with the bicubic filter
 * (the pyramid keeps reductions below 2). More go through the portable code. */
#define MAX_PAIRS 8

/* Taps 2 p and 2 p + 1 as one 16-bit lane: c[2 p] in the low byte, c[2 p + 1] in the high one (maddubs' pairs). */
static inline int16_t pair_weight(const int8_t *c, int p) { return (int16_t)((c[2 * p] & 255) | (c[2 * p + 1] << 8)); }

/* row(in, w, pairs, out, n) inlined with a constant `pairs` for the common counts. */
#define COMBINE_BY_PAIRS(row, in, w, pairs, out, n)      \
    switch (pairs) {                                     \
    case 1: row(in, w, 1, out, n); break;                \
    case 2: row(in, w, 2, out, n); break;                \
    case 3: row(in, w, 3, out, n); break;                \
    case 4: row(in, w, 4, out, n); break;                \
    default: row(in, w, pairs, out, n);                  \
    }

/* The vector sums (combine_vector.h): combine_avx2, 32 values per block, rows shorter than one through the
 * portable code; combine_avx512, 64 values per block, rows shorter than one through combine_avx2. */
#define VEC(name) name##_avx2
#define VTARGET SID_AVX2
#define vi __m256i
#define VB 32
#define V_FALLBACK combine_c
#define V_SET16 _mm256_set1_epi16
#define V_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), v)
#define V_ADD16 _mm256_add_epi16
#define V_MADDUBS _mm256_maddubs_epi16
#define V_UNPACKLO8 _mm256_unpacklo_epi8
#define V_UNPACKHI8 _mm256_unpackhi_epi8
#define V_SRAI16 _mm256_srai_epi16
#define V_PACKUS16 _mm256_packus_epi16
#include "combine_vector.h"

#define VEC(name) name##_avx512
#define VTARGET SID_AVX512
#define vi __m512i
#define VB 64
#define V_FALLBACK combine_avx2
#define V_SET16 _mm512_set1_epi16
#define V_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define V_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define V_ADD16 _mm512_add_epi16
#define V_MADDUBS _mm512_maddubs_epi16
#define V_UNPACKLO8 _mm512_unpacklo_epi8
#define V_UNPACKHI8 _mm512_unpackhi_epi8
#define V_SRAI16 _mm512_srai_epi16
#define V_PACKUS16 _mm512_packus_epi16
#include "combine_vector.h"
#endif

/* Output row i (of `rows`) is the sum over its taps t of coef[t * coef_stride + i] times input row
 * first[i] + t, over the pixels span[2 i] .. span[2 i + 1] - 1 of the x0 .. x0 + width - 1 of each
 * input row (an empty span skips the row), with the padding tap of axis_taps. With `prefetch`,
 * the input rows that the next output rows will read are prefetched: a source larger than the cache
 * would otherwise make each new row wait for memory. */
#define PREFETCH_ROWS 4

static void combine_rows(const uint32_t *src, ptrdiff_t src_stride, int source_rows, int x0, int rows,
                         const int *first, const int *count, const int8_t *coef, int coef_stride, const int *span,
                         int prefetch,
                         const uint8_t **taps, int8_t *weights, uint32_t *dst, ptrdiff_t dst_stride, int simd) {
    const ptrdiff_t row_bytes = 4 * src_stride;
    int fetched = 0; /* the rows below were prefetched or read */
    for (int i = 0; i < rows; i++) {
        if (span[2 * i] >= span[2 * i + 1]) continue;
        const int from = 4 * span[2 * i], values = 4 * span[2 * i + 1] - from, n = count[i];
        const uint8_t *base = (const uint8_t *)(src + first[i] * src_stride + x0) + from;
        if (prefetch) {
            const int end = first[i] + n, ahead = end + PREFETCH_ROWS < source_rows ? end + PREFETCH_ROWS : source_rows;
            for (int y = fetched > end ? fetched : end; y < ahead; y++)
                for (int b = 0; b < values; b += 64) __builtin_prefetch(base + (y - first[i]) * row_bytes + b);
            fetched = fetched > ahead ? fetched : ahead;
        }
        const int paired = (n + 1) & ~1; /* in pairs; an odd tap with a padding one, weight 0, on row 0 */
        for (int t = 0; t < paired; t++) {
            taps[t] = base + (t < n ? t : 0) * row_bytes;
            weights[t] = coef[(size_t)t * coef_stride + i];
        }
        uint8_t *out = (uint8_t *)(dst + i * dst_stride) + from;
#if SID_X86
        if (simd >= SID_VECTOR_AVX512) {
            combine_avx512(taps, weights, paired, out, values);
            continue;
        }
        if (simd) {
            combine_avx2(taps, weights, paired, out, values);
            continue;
        }
#endif
        combine_c(taps, weights, paired, out, values);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* The sample                                                                                       */
/* ------------------------------------------------------------------------------------------------ */

/* The grid points q0 .. q1 - 1 (indices of the resized crop's pixels, -1 and side standing for its
 * repeated edge) that the warp may read along the axis whose map row is (a, b, c): those around
 * the images of the output pixel centres, whose extremes are at the corners, with a margin of one
 * for the warp's rounding of positions. */
static void needed(const double *row, int size, int side, int *q0, int *q1) {
    const double lo = 0.5, hi = size - 0.5;
    double low = row[2] + fmin(row[0] * lo, row[0] * hi) + fmin(row[1] * lo, row[1] * hi);
    double high = row[2] + fmax(row[0] * lo, row[0] * hi) + fmax(row[1] * lo, row[1] * hi);
    /* bilinear sampling at X reads grid points floor(X - 0.5) and the next */
    low = floor(low - 0.5) - 1.0;
    high = floor(high - 0.5) + 3.0;
    low = low < -1.0 ? -1.0 : low > side + 1.0 ? side + 1.0 : low;
    high = high < -1.0 ? -1.0 : high > side + 1.0 ? side + 1.0 : high;
    *q0 = (int)low;
    *q1 = (int)high;
    if (*q1 - *q0 < 2) { /* no output pixel reads the grid (all are filled); keep two points for the warp */
        *q0 = *q0 < side - 1 ? *q0 : side - 1;
        *q1 = *q0 + 2;
    }
}

/* floor(x) for |x| < 2^51, without a call (floor() is one where SSE4.1 is not assumed) or a conversion:
 * adding and taking away 1.5 2^52 rounds to the nearest integer. */
static inline double floor_small(double x) {
    const double magic = 6755399441055744.0, t = (x + magic) - magic;
    return t > x ? t - 1.0 : t;
}

/* For each grid index q = q0 .. q0 + count - 1 along one axis (u), a span of grid indices along the
 * other (v): span[2 j] .. span[2 j + 1] - 1, relative to v0 and within [0, nv), from the extent
 * [low, high] in v of the parallelogram `corner` (u, v of its corners, in order) within u in
 * [q - reach, q + reach]: floor(low) - below .. floor(high) + above - 1. The parallelogram is
 * convex, so that extent is the one of its edges clipped to the band: each edge, a segment, gives
 * its v at the ends of its clipped u range. Edge by edge over all the bands, so that the compiler
 * vectorises the loops; `scratch` holds 2 count doubles. */
static inline __attribute__((always_inline)) void spans_body(const double corner[4][2], int axis, double reach, double below, double above, int q0,
                              int count, int v0, int nv, int *span, double *scratch) {
    const int other = 1 - axis;
    double *low = scratch, *high = scratch + count;
    for (int j = 0; j < count; j++) {
        low[j] = INFINITY;
        high[j] = -INFINITY;
    }
    for (int k = 0; k < 4; k++) {
        const double *p = corner[k], *r = corner[(k + 1) % 4];
        const double pu = p[axis], pv = p[other], ru = r[axis], rv = r[other];
        const double slope = pu != ru ? (rv - pv) / (ru - pu) : 0.0;
        const double umin = pu < ru ? pu : ru, umax = pu < ru ? ru : pu;
        for (int j = 0; j < count; j++) {
            const double from = q0 + j - reach, to = q0 + j + reach;
            const double a = from > umin ? from : umin, b = to < umax ? to : umax;
            /* v at u = a and u = b; exactly the corner's at a corner */
            const double va = a == ru ? rv : pv + (a - pu) * slope, vb = b == ru ? rv : pv + (b - pu) * slope;
            const double least = va < vb ? va : vb, most = va < vb ? vb : va;
            const int crosses = a <= b; /* & rather than &&: no branch, so that the loop vectorises */
            low[j] = crosses & (least < low[j]) ? least : low[j];
            high[j] = crosses & (most > high[j]) ? most : high[j];
        }
    }
    for (int j = 0; j < count; j++) { /* the span, still as doubles (a loop of one type: it vectorises) */
        const int crossed = low[j] <= high[j];
        /* within 8 of [v0, v0 + nv] before the floor (INFINITY where no edge crossed): the span, clamped to
         * [0, nv], is the same (below and above are at most 4) */
        const double first = v0 - 8.0, last = v0 + nv + 8.0;
        const double l = low[j] < first ? first : low[j] > last ? last : low[j];
        const double h = high[j] < first ? first : high[j] > last ? last : high[j];
        double a = floor_small(l) - below - v0, b = floor_small(h) + above - v0;
        a = a < 0.0 ? 0.0 : a > nv ? nv : a;
        b = b > nv ? nv : b < a ? a : b;
        low[j] = crossed ? a : 0.0;
        high[j] = crossed ? b : 0.0;
    }
    for (int j = 0; j < count; j++) {
        span[2 * j] = (int)low[j];
        span[2 * j + 1] = (int)high[j];
    }
}

static void spans_c(const double corner[4][2], int axis, double reach, double below, double above, int q0, int count,
                    int v0, int nv, int *span, double *scratch) {
    spans_body(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
}

#if SID_X86
SID_AVX2 static void spans_avx2(const double corner[4][2], int axis, double reach, double below, double above, int q0,
                                int count, int v0, int nv, int *span, double *scratch) {
    spans_body(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
}

SID_AVX512_LOOPS static void spans_avx512(const double corner[4][2], int axis, double reach, double below,
                                          double above, int q0, int count, int v0, int nv, int *span, double *scratch) {
    spans_body(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
}
#endif

/* spans, compiled for AVX2 where `simd`, as axis_taps. */
static void spans(const double corner[4][2], int axis, double reach, double below, double above, int q0, int count,
                  int v0, int nv, int *span, double *scratch, int simd) {
#if SID_X86
    if (simd >= SID_VECTOR_AVX512) {
        spans_avx512(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
        return;
    }
    if (simd) {
        spans_avx2(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
        return;
    }
#else
    (void)simd;
#endif
    spans_c(corner, axis, reach, below, above, q0, count, v0, nv, span, scratch);
}

/* Whether every output pixel centre maps inside [0, side)^2 (geometry.covers_output's test). */
static int covers(const double *f, int size, int side) {
    const double lo = 0.5, hi = size - 0.5;
    for (int r = 0; r < 6; r += 3) {
        double low = f[r + 2] + fmin(f[r] * lo, f[r] * hi) + fmin(f[r + 1] * lo, f[r + 1] * hi);
        double high = f[r + 2] + fmax(f[r] * lo, f[r] * hi) + fmax(f[r + 1] * lo, f[r + 1] * hi);
        if (!(low >= 0.0 && high < side)) return 0;
    }
    return 1;
}

/* Carve `n` bytes out of the workspace at *offset (only counting when ws->mem is NULL). */
static void *carve(sid_workspace *ws, size_t *offset, size_t n) {
    void *p = ws->mem ? (char *)ws->mem + *offset : NULL;
    *offset += sid_align32(n);
    return p;
}

int sid_render(const render_job *job, sid_workspace *ws, int simd) {
    const double *f = job->to_resized, *box = job->box;
    const int side = job->side;
    int qx0, qx1, qy0, qy1;
    needed(f, job->size, side, &qx0, &qx1);
    needed(f + 3, job->size, side, &qy0, &qy1);
    const int nqx = qx1 - qx0, nqy = qy1 - qy0;
    /* The pixels the resize may read: the box, rounded outwards (at level 0, exactly the crop that
     * the reference resizes, at whose edges PIL cuts its filter as here). */
    const int lox = (int)floor(box[0]), loy = (int)floor(box[1]);
    const int hix = (int)ceil(box[2]) < job->width ? (int)ceil(box[2]) : job->width;
    const int hiy = (int)ceil(box[3]) < job->height ? (int)ceil(box[3]) : job->height;
    /* the most taps of an output, rounded up to pairs */
    int kx = max_taps(box[2] - box[0], side, job->filter), ky = max_taps(box[3] - box[1], side, job->filter);
    kx = ((kx < hix - lox ? kx : hix - lox) + 1) & ~1;
    ky = ((ky < hiy - loy ? ky : hiy - loy) + 1) & ~1;

    /* Lay out the scratch memory (a first pass counts it), growing the workspace when needed. */
    int *xfirst = NULL, *xcount = NULL, *yfirst = NULL, *ycount = NULL;
    int8_t *xcoef = NULL, *ycoef = NULL;
    const uint8_t **taps = NULL;
    int8_t *weights = NULL;
    float *scratch = NULL;
    int *xspan = NULL, *yspan = NULL;
    uint32_t *rows = NULL, *columns = NULL, *grid = NULL;
    int width = 0;
    const int most = kx > ky ? kx : ky;
    /* the taps of nqx (nqy) outputs and more, up to a multiple of 32 outputs: the vectorised loops of
     * axis_taps then have no scalar remainder (the extra outputs, of the clamped edge, go unread) */
    const int mx = (nqx + 31) & ~31, my = (nqy + 31) & ~31;
    for (int layout = 0; layout < 2; layout++) {
        size_t offset = 0;
        xfirst = carve(ws, &offset, sizeof(int) * mx);
        xcount = carve(ws, &offset, sizeof(int) * mx);
        xcoef = carve(ws, &offset, (size_t)mx * kx);
        yfirst = carve(ws, &offset, sizeof(int) * my);
        ycount = carve(ws, &offset, sizeof(int) * my);
        ycoef = carve(ws, &offset, (size_t)my * ky);
        taps = carve(ws, &offset, sizeof(uint8_t *) * (most + 1));
        weights = carve(ws, &offset, (size_t)most + 1);
        scratch = carve(ws, &offset, sizeof(float) * taps_scratch(mx > my ? mx : my, most));
        xspan = carve(ws, &offset, sizeof(int) * 2 * nqx);
        yspan = carve(ws, &offset, sizeof(int) * 2 * nqy);
        if (layout == 1) {
            axis_taps(box[0], box[2], side, lox, hix, job->filter, qx0, qx0 + mx, kx, xfirst, xcount, xcoef, scratch, simd);
            axis_taps(box[1], box[3], side, loy, hiy, job->filter, qy0, qy0 + my, ky, yfirst, ycount, ycoef, scratch, simd);
            width = xfirst[nqx - 1] + xcount[nqx - 1] - xfirst[0];
        } else {
            width = hix - lox; /* at most; the exact width needs the taps */
        }
        rows = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * width);
        columns = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * width);
        grid = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * nqx);
        if (layout == 0 && sid_workspace_reserve(ws, offset)) return -1;
    }
    const int x0 = xfirst[0];
    for (int i = 0; i < nqx; i++) xfirst[i] -= x0;

    double corner[4][2];
    const double at[4][2] = {{0.5, 0.5}, {job->size - 0.5, 0.5}, {job->size - 0.5, job->size - 0.5},
                             {0.5, job->size - 0.5}};
    for (int k = 0; k < 4; k++) {
        corner[k][0] = f[0] * at[k][0] + f[1] * at[k][1] + f[2] - 0.5;
        corner[k][1] = f[3] * at[k][0] + f[4] * at[k][1] + f[5] - 0.5;
    }
    /* The output square maps to the parallelogram `corner`; a pixel mapped to (u, v) reads grid
     * indices floor(u) and floor(u) + 1 (likewise v). So grid column qx0 + j (a row of `grid`) is read
     * by points with u in [j - 1, j + 1), widened by one for the warp's rounding: xspan, those
     * points' v extent, rounded out likewise. Every grid point (j, i) that xspan holds is within u
     * distance 2 and v distance 3 of the parallelogram, so yspan, the grid columns within distance 3 of
     * it along grid row i, holds them all: the first pass computes each grid row where the second
     * one reads it. */
    spans(corner, 0, 2.0, 1.0, 3.0, qx0, nqx, qy0, nqy, xspan, (double *)scratch, simd);
    spans(corner, 1, 3.0, 3.0, 4.0, qy0, nqy, qx0, nqx, yspan, (double *)scratch, simd);
    for (int i = 0; i < nqy; i++) {
        if (yspan[2 * i] < yspan[2 * i + 1]) {
            const int last = yspan[2 * i + 1] - 1;
            yspan[2 * i] = xfirst[yspan[2 * i]];
            yspan[2 * i + 1] = xfirst[last] + xcount[last];
        }
    }

    /* The resize: along the columns of the source into `rows` (grid row i, source column x0 + j), then
     * transposed (only where the first pass computed it, which holds all that the second reads), along the
     * columns of that into `grid`, which holds the resized crop transposed:
     * grid[j * nqy + i] is grid point (qx0 + j, qy0 + i). */
    combine_rows(job->src, job->width, job->height, x0, nqy, yfirst, ycount, ycoef, my, yspan, 1, taps, weights, rows,
                 width, simd);
    sid_transpose(rows, width, nqy, width, columns, nqy, yspan, simd);
    combine_rows(columns, nqy, width, 0, nqx, xfirst, xcount, xcoef, mx, xspan, 0, taps, weights, grid, nqy, simd);

    /* The warp reads the transposed grid: output pixel (x, y) maps to X = a (x + 0.5) + b (y + 0.5) + c
     * along the resized crop's columns, whose grid index X - 0.5 - qx0 is the row of `grid`; likewise Y. */
    warp_job w;
    const double m[6] = {
        f[3], f[4], 0.5 * f[3] + 0.5 * f[4] + f[5] - 0.5 - qy0,
        f[0], f[1], 0.5 * f[0] + 0.5 * f[1] + f[2] - 0.5 - qx0,
    };
    for (int i = 0; i < 6; i++) w.m[i] = (float)m[i];
    w.src = grid;
    w.height = nqx;
    w.width = nqy;
    w.has_footprint = !covers(f, job->size, side);
    memcpy(w.f, f, sizeof(w.f));
    w.side = side;
    w.dst = job->dst;
    w.size = job->size;
    sid_warp(&w, simd);
    return 0;
}

int sid_workspace_reserve(sid_workspace *ws, size_t n) {
    if (n <= ws->capacity) return 0;
    free(ws->mem);
    ws->mem = malloc(n);
    ws->capacity = ws->mem ? n : 0;
    return ws->mem ? 0 : -1;
}

void sid_workspace_free(sid_workspace *ws) {
    free(ws->mem);
    ws->mem = NULL;
    ws->capacity = 0;
}
