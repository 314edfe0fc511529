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

static double bilinear_filter(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double bicubic_filter(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= PI;
    return sin(x) / x;
}

static double lanczos_filter(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

static const double SUPPORT[] = {1.0, 2.0, 3.0};


/* The most taps an output of a resize of `length` pixels onto `side` can have (PIL's ksize). */
static int max_taps(double length, int side, int filter) {
    double scale = length / side, support = SUPPORT[filter] * (scale > 1.0 ? scale : 1.0);
    return (int)ceil(support) * 2 + 1;
}

/* The taps of outputs q0 .. q1 - 1 of PIL's resize of [b0, b1) onto `side` pixels, reading only pixels
 * [lo, hi): output q (clamped to [0, side - 1], so that the grid's border repeats its edge as the
 * bilinear warp reads it) reads pixels first[i] .. first[i] + count[i] - 1 with the weights
 * coef[i * stride ...]: PIL's, normalised, in Q14 (16384 is 1) and adjusted so that they sum to 16384
 * exactly, so that a flat region stays flat. `w` holds `stride` doubles of scratch. */
static void axis_taps(double b0, double b1, int side, int lo, int hi, int filter, int q0, int q1, int stride,
                      int *first, int *count, int16_t *coef, double *w) {
    const double scale = (b1 - b0) / side, filterscale = scale > 1.0 ? scale : 1.0;
    const double support = SUPPORT[filter] * filterscale, inv = 1.0 / filterscale;
    for (int i = 0; i < q1 - q0; i++) {
        int q = q0 + i < 0 ? 0 : q0 + i >= side ? side - 1 : q0 + i;
        double center = b0 + (q + 0.5) * scale, sum = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        xmin = xmin < lo ? lo : xmin;
        xmax = xmax > hi ? hi : xmax;
        int n = xmax - xmin;
        n = n > stride ? stride : n;
        const double at = xmin - center + 0.5;
        switch (filter) { /* one loop per filter, so that the choice is not made per tap */
        case SID_BILINEAR:
            for (int x = 0; x < n; x++) sum += w[x] = bilinear_filter((x + at) * inv);
            break;
        case SID_BICUBIC:
            for (int x = 0; x < n; x++) sum += w[x] = bicubic_filter((x + at) * inv);
            break;
        default:
            for (int x = 0; x < n; x++) sum += w[x] = lanczos_filter((x + at) * inv);
        }
        int16_t *c = coef + (size_t)i * stride;
        int total = 0, largest = 0;
        const double to_q14 = sum != 0.0 ? 16384.0 / sum : 0.0;
        for (int x = 0; x < n; x++) {
            /* rounded half up; the offset makes the truncation a floor (weights are above -2) */
            c[x] = (int16_t)((int)(w[x] * to_q14 + 32768.5) - 32768);
            total += c[x];
            largest = w[x] > w[largest] ? x : largest;
        }
        if (sum != 0.0 && n > 0) c[largest] = (int16_t)(c[largest] + 16384 - total);
        first[i] = xmin;
        count[i] = n;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* One pass: rows of the output as weighted sums of rows of the input                               */
/* ------------------------------------------------------------------------------------------------ */

/* The arithmetic, in 16-bit integers as the vector code does it: an input value v is widened to
 * v << 7, each tap adds (v << 7) * c rounded to 15 fraction bits (a pixel value with 6 fraction bits),
 * and the sum is rounded and clamped to 0..255. The sum of a pixel's weights is at most 1.3 for
 * PIL's filters, so no 16-bit sum can overflow. */
static inline int mulhrs(int a, int b) { return (a * b + 0x4000) >> 15; }

static inline uint8_t clamp8(int acc) {
    int r = (acc + 32) >> 6;
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

static void widen_c(const uint8_t *in, int16_t *out, int n) {
    for (int v = 0; v < n; v++) out[v] = (int16_t)(in[v] << 7);
}

static void combine_c(const int16_t *const *in, const int16_t *c, int count, uint8_t *out, int from, int n) {
    for (int v = from; v < n; v++) {
        int acc = 0;
        for (int t = 0; t < count; t++) acc += mulhrs(in[t][v], c[t]);
        out[v] = clamp8(acc);
    }
}

#if SID_X86
/* Both vector loops below end with one vector that may overlap the previous ones, for a row whose
 * length is not a multiple of 16 values: a value depends on its position alone, so those computed
 * twice are computed the same. Rows shorter than one vector go through the portable code. */
SID_AVX2 static inline void widen16(const uint8_t *in, int16_t *out) {
    __m256i wide = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)in));
    _mm256_storeu_si256((__m256i *)out, _mm256_slli_epi16(wide, 7));
}

SID_AVX2 static void widen_avx2(const uint8_t *in, int16_t *out, int n) {
    if (n < 16) {
        widen_c(in, out, n);
        return;
    }
    for (int v = 0; v + 16 <= n; v += 16) widen16(in + v, out + v);
    widen16(in + n - 16, out + n - 16);
}

SID_AVX2 static inline __m256i combine16(const int16_t *const *in, const int16_t *c, int count, int v) {
    __m256i acc = _mm256_setzero_si256();
    for (int t = 0; t < count; t++)
        acc = _mm256_add_epi16(acc, _mm256_mulhrs_epi16(_mm256_loadu_si256((const __m256i *)(in[t] + v)),
                                                        _mm256_set1_epi16(c[t])));
    return _mm256_srai_epi16(_mm256_add_epi16(acc, _mm256_set1_epi16(32)), 6);
}

SID_AVX2 static void combine_avx2(const int16_t *const *in, const int16_t *c, int count, uint8_t *out, int n) {
    if (n < 16) {
        combine_c(in, c, count, out, 0, n);
        return;
    }
    const __m256i half = _mm256_set1_epi16(32);
    int v = 0;
    for (; v + 64 <= n; v += 64) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < count; t++) {
            const __m256i w = _mm256_set1_epi16(c[t]);
            const __m256i *p = (const __m256i *)(in[t] + v);
            a0 = _mm256_add_epi16(a0, _mm256_mulhrs_epi16(_mm256_loadu_si256(p), w));
            a1 = _mm256_add_epi16(a1, _mm256_mulhrs_epi16(_mm256_loadu_si256(p + 1), w));
            a2 = _mm256_add_epi16(a2, _mm256_mulhrs_epi16(_mm256_loadu_si256(p + 2), w));
            a3 = _mm256_add_epi16(a3, _mm256_mulhrs_epi16(_mm256_loadu_si256(p + 3), w));
        }
        a0 = _mm256_srai_epi16(_mm256_add_epi16(a0, half), 6);
        a1 = _mm256_srai_epi16(_mm256_add_epi16(a1, half), 6);
        a2 = _mm256_srai_epi16(_mm256_add_epi16(a2, half), 6);
        a3 = _mm256_srai_epi16(_mm256_add_epi16(a3, half), 6);
        /* packus saturates to 0..255, as clamp8 clamps; it interleaves 64-bit groups, which the permutation undoes */
        _mm256_storeu_si256((__m256i *)(out + v), _mm256_permute4x64_epi64(_mm256_packus_epi16(a0, a1), 0xD8));
        _mm256_storeu_si256((__m256i *)(out + v + 32), _mm256_permute4x64_epi64(_mm256_packus_epi16(a2, a3), 0xD8));
    }
    for (; v < n; v += 16) {
        int at = v + 16 <= n ? v : n - 16;
        __m128i packed = _mm256_castsi256_si128(_mm256_permute4x64_epi64(
            _mm256_packus_epi16(combine16(in, c, count, at), _mm256_setzero_si256()), 0xD8));
        _mm_storeu_si128((__m128i *)(out + at), packed);
    }
}
#endif

/* Output row i (of `rows`) is the sum over its taps t of coef[i * stride + t] times input row
 * first[i] + t, over the pixels span[2 i] .. span[2 i + 1] - 1 of the x0 .. x0 + width - 1 of each
 * input row (an empty span skips the row). Input rows are widened once, whole, into a ring of
 * `ring_rows` rows (a power of two, at least the most taps of any output; first[i] and
 * first[i] + count[i] never decrease, so a row leaves the ring only after its last use), and
 * prefetched a few rows ahead: a source larger than the cache would otherwise make each new row
 * wait for memory. */
#define PREFETCH_ROWS 4

static void combine_rows(const uint32_t *src, ptrdiff_t src_stride, int source_rows, int x0, int width, int rows,
                         const int *first, const int *count, const int16_t *coef, int stride, const int *span,
                         int16_t *ring, int ring_rows, const int16_t **taps, uint32_t *dst, ptrdiff_t dst_stride,
                         int simd) {
    const int n = 4 * width;
    int next = first[0];
    for (int i = 0; i < rows; i++) {
        if (span[2 * i] >= span[2 * i + 1]) continue;
        const int end = first[i] + count[i];
        for (int y = next > first[i] ? next : first[i]; y < end; y++) {
            const uint8_t *in = (const uint8_t *)(src + y * src_stride + x0);
            if (y + PREFETCH_ROWS < source_rows)
                for (int b = 0; b < n; b += 64) __builtin_prefetch(in + PREFETCH_ROWS * 4 * src_stride + b);
            int16_t *out = ring + (size_t)(y & (ring_rows - 1)) * n;
#if SID_X86
            if (simd) {
                widen_avx2(in, out, n);
                continue;
            }
#endif
            widen_c(in, out, n);
        }
        next = end > next ? end : next;
        const int from = 4 * span[2 * i], values = 4 * span[2 * i + 1] - from;
        for (int t = 0; t < count[i]; t++) taps[t] = ring + (size_t)((first[i] + t) & (ring_rows - 1)) * n + from;
        uint8_t *out = (uint8_t *)(dst + i * dst_stride) + from;
#if SID_X86
        if (simd) {
            combine_avx2(taps, coef + (size_t)i * stride, count[i], out, values);
            continue;
        }
#endif
        combine_c(taps, coef + (size_t)i * stride, count[i], out, 0, values);
    }
}

/* dst (cols x rows) is src (rows x cols) transposed, but for the top-left r0 x c0 block. */
static void transpose_c(const uint32_t *src, int rows, int cols, uint32_t *dst, int r0, int c0) {
    for (int i = 0; i < rows; i++)
        for (int j = i < r0 ? c0 : 0; j < cols; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}

#if SID_X86
/* Blocks of 8 x 8 pixels in registers; the ragged edges as transpose_c. */
SID_AVX2 static void transpose_avx2(const uint32_t *src, int rows, int cols, uint32_t *dst) {
    const int r8 = rows & ~7, c8 = cols & ~7;
    for (int i = 0; i < r8; i += 8) {
        for (int j = 0; j < c8; j += 8) {
            __m256i v[8], t[8];
            for (int k = 0; k < 8; k++) v[k] = _mm256_loadu_si256((const __m256i *)(src + (size_t)(i + k) * cols + j));
            for (int k = 0; k < 8; k += 2) {
                t[k] = _mm256_unpacklo_epi32(v[k], v[k + 1]);
                t[k + 1] = _mm256_unpackhi_epi32(v[k], v[k + 1]);
            }
            for (int k = 0; k < 8; k += 4) {
                v[k] = _mm256_unpacklo_epi64(t[k], t[k + 2]);
                v[k + 1] = _mm256_unpackhi_epi64(t[k], t[k + 2]);
                v[k + 2] = _mm256_unpacklo_epi64(t[k + 1], t[k + 3]);
                v[k + 3] = _mm256_unpackhi_epi64(t[k + 1], t[k + 3]);
            }
            /* v[0..3] hold rows i..i+3 of output columns (j, j+1, j+2, j+3 | j+4 ..) per lane */
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_si256((__m256i *)(dst + (size_t)(j + k) * rows + i),
                                    _mm256_permute2x128_si256(v[k], v[k + 4], 0x20));
                _mm256_storeu_si256((__m256i *)(dst + (size_t)(j + k + 4) * rows + i),
                                    _mm256_permute2x128_si256(v[k], v[k + 4], 0x31));
            }
        }
    }
    transpose_c(src, rows, cols, dst, r8, c8);
}
#endif

static void transpose(const uint32_t *src, int rows, int cols, uint32_t *dst, int simd) {
#if SID_X86
    if (simd) {
        transpose_avx2(src, rows, cols, dst);
        return;
    }
#else
    (void)simd;
#endif
    transpose_c(src, rows, cols, dst, 0, 0);
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

/* For each grid index q = q0 .. q0 + count - 1 along one axis (u), a span of grid indices along the
 * other (v): span[2 j] .. span[2 j + 1] - 1, relative to v0 and within [0, nv), from the extent
 * [low, high] in v of the parallelogram `corner` (u, v of its corners, in order) within u in
 * [q - reach, q + reach]: floor(low) - below .. floor(high) + above - 1. */
static void spans(const double corner[4][2], int axis, double reach, double below, double above, int q0, int count,
                  int v0, int nv, int *span) {
    const int other = 1 - axis;
    double slope[4];
    for (int k = 0; k < 4; k++) {
        const double *p = corner[k], *r = corner[(k + 1) % 4];
        slope[k] = p[axis] != r[axis] ? (r[other] - p[other]) / (r[axis] - p[axis]) : 0.0;
    }
    for (int j = 0; j < count; j++) {
        const double bounds[2] = {q0 + j - reach, q0 + j + reach};
        double low = INFINITY, high = -INFINITY;
        for (int k = 0; k < 4; k++) {
            const double *p = corner[k], *r = corner[(k + 1) % 4];
            if (p[axis] >= bounds[0] && p[axis] <= bounds[1]) {
                low = p[other] < low ? p[other] : low;
                high = p[other] > high ? p[other] : high;
            }
            for (int e = 0; e < 2; e++) {
                if ((p[axis] - bounds[e]) * (r[axis] - bounds[e]) < 0.0) {
                    double v = p[other] + (bounds[e] - p[axis]) * slope[k];
                    low = v < low ? v : low;
                    high = v > high ? v : high;
                }
            }
        }
        int lo = 0, hi = 0;
        if (low <= high) {
            double a = floor(low) - below - v0, b = floor(high) + above - v0;
            lo = a < 0.0 ? 0 : a > nv ? nv : (int)a;
            hi = b < 0.0 ? 0 : b > nv ? nv : (int)b;
        }
        span[2 * j] = lo;
        span[2 * j + 1] = hi > lo ? hi : lo;
    }
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

static size_t align32(size_t n) { return (n + 31) & ~(size_t)31; }

/* Carve `n` bytes out of the workspace at *offset (only counting when ws->mem is NULL). */
static void *carve(sid_workspace *ws, size_t *offset, size_t n) {
    void *p = ws->mem ? (char *)ws->mem + *offset : NULL;
    *offset += align32(n);
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
    int kx = max_taps(box[2] - box[0], side, job->filter), ky = max_taps(box[3] - box[1], side, job->filter);
    kx = kx < hix - lox ? kx : hix - lox;
    ky = ky < hiy - loy ? ky : hiy - loy;

    /* Lay out the scratch memory (a first pass counts it), growing the workspace when needed. */
    int *xfirst = NULL, *xcount = NULL, *yfirst = NULL, *ycount = NULL;
    int16_t *xcoef = NULL, *ycoef = NULL, *ring = NULL;
    const int16_t **taps = NULL;
    double *weights = NULL;
    int *xspan = NULL, *yspan = NULL;
    uint32_t *rows = NULL, *columns = NULL, *grid = NULL;
    int width = 0, ring_rows = 1;
    while (ring_rows < kx || ring_rows < ky) ring_rows *= 2;
    for (int layout = 0; layout < 2; layout++) {
        size_t offset = 0;
        xfirst = carve(ws, &offset, sizeof(int) * nqx);
        xcount = carve(ws, &offset, sizeof(int) * nqx);
        xcoef = carve(ws, &offset, sizeof(int16_t) * nqx * kx);
        yfirst = carve(ws, &offset, sizeof(int) * nqy);
        ycount = carve(ws, &offset, sizeof(int) * nqy);
        ycoef = carve(ws, &offset, sizeof(int16_t) * nqy * ky);
        taps = carve(ws, &offset, sizeof(int16_t *) * ring_rows);
        weights = carve(ws, &offset, sizeof(double) * ring_rows);
        xspan = carve(ws, &offset, sizeof(int) * 2 * nqx);
        yspan = carve(ws, &offset, sizeof(int) * 2 * nqy);
        if (layout == 1) {
            axis_taps(box[0], box[2], side, lox, hix, job->filter, qx0, qx1, kx, xfirst, xcount, xcoef, weights);
            axis_taps(box[1], box[3], side, loy, hiy, job->filter, qy0, qy1, ky, yfirst, ycount, ycoef, weights);
            width = xfirst[nqx - 1] + xcount[nqx - 1] - xfirst[0];
        } else {
            width = hix - lox; /* at most; the exact width needs the taps */
        }
        size_t wide = (size_t)4 * (width > nqy ? width : nqy);
        ring = carve(ws, &offset, sizeof(int16_t) * wide * ring_rows);
        rows = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * width);
        columns = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * width);
        grid = carve(ws, &offset, sizeof(uint32_t) * (size_t)nqy * nqx);
        if (layout == 0 && offset > ws->capacity) {
            free(ws->mem);
            ws->mem = malloc(offset);
            ws->capacity = ws->mem ? offset : 0;
            if (!ws->mem) return -1;
        }
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
    spans(corner, 0, 2.0, 1.0, 3.0, qx0, nqx, qy0, nqy, xspan);
    spans(corner, 1, 3.0, 3.0, 4.0, qy0, nqy, qx0, nqx, yspan);
    for (int i = 0; i < nqy; i++) {
        if (yspan[2 * i] < yspan[2 * i + 1]) {
            const int last = yspan[2 * i + 1] - 1;
            yspan[2 * i] = xfirst[yspan[2 * i]];
            yspan[2 * i + 1] = xfirst[last] + xcount[last];
        }
    }

    /* The resize: along the columns of the source into `rows` (grid row i, source column x0 + j), then
     * transposed, along the columns of that into `grid`, which holds the resized crop transposed:
     * grid[j * nqy + i] is grid point (qx0 + j, qy0 + i). */
    combine_rows(job->src, job->width, job->height, x0, width, nqy, yfirst, ycount, ycoef, ky, yspan, ring, ring_rows,
                 taps, rows, width, simd);
    transpose(rows, nqy, width, columns, simd);
    combine_rows(columns, nqy, width, 0, nqy, nqx, xfirst, xcount, xcoef, kx, xspan, ring, ring_rows, taps, grid, nqy,
                 simd);

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

void sid_workspace_free(sid_workspace *ws) {
    free(ws->mem);
    ws->mem = NULL;
    ws->capacity = 0;
}
