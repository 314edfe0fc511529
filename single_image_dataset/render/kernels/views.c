/* A view of a rendered sample (see kernels.h): PIL's antialiased resize of the crop with the flip, the colour
 * jitter of jitter.c, PIL's grayscale, the split into planes of planes.c, torchvision's Gaussian blur and the
 * solarization, as torchvision's functional ops compute them on a PIL image. Portable and AVX2, the same bytes. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#if SID_X86
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------------------------------------ */
/* The resize: PIL's 8-bit resampling (Resample.c) exactly                                          */
/* ------------------------------------------------------------------------------------------------ */

/* PIL's fixed point: weights with 22 fraction bits, sums started at one half, floored and clipped to bytes
 * after each pass (along the rows first, then down the columns). Every sum is an exact integer below 2^31,
 * so any order of summation gives PIL's bytes. */
#define PRECISION_BITS 22
#define HALF (1 << (PRECISION_BITS - 1))

/* PIL's bilinear filter (Resample.c: bilinear_filter), in double precision as PIL evaluates it; its support is 1.
 * The views' own, apart from the samples' resize in resample.c, whose arithmetic is tuned for speed. */
static double bilinear(double x) {
    x = x < 0.0 ? -x : x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs and normalize_coeffs_8bpc for a bilinear resize of pixels [0, in) onto `out` pixels:
 * output q reads pixels first[q] .. first[q] + count[q] - 1 with the weights coef[q * stride ...] (`stride` at
 * least PIL's ksize). The same double-precision operations in the same order as PIL's. `w` holds `stride`
 * doubles of scratch. */
static void pil_taps(int in, int out, int stride, int *first, int *count, int32_t *coef, double *w) {
    const double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filterscale, ss = 1.0 / filterscale;
    for (int q = 0; q < out; q++) {
        const double center = (q + 0.5) * scale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        xmin = xmin < 0 ? 0 : xmin;
        xmax = (xmax > in ? in : xmax) - xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bilinear((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *c = coef + (size_t)q * stride;
        for (int x = 0; x < xmax; x++) {
            double k = ww != 0.0 ? w[x] / ww : w[x];
            c[x] = k < 0.0 ? (int32_t)(-0.5 + k * (1 << PRECISION_BITS)) : (int32_t)(0.5 + k * (1 << PRECISION_BITS));
        }
        first[q] = xmin;
        count[q] = xmax;
    }
}

/* PIL's clip8: the sum floored to a level, clipped to 0..255. */
static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One pass, as a weighted sum of rows: the `n` bytes of an output row from the rows `rows[t]` with weights c[t].
 * Along the crop's rows, it runs on the crop transposed. */
static void combine_c(const uint8_t *const *rows, const int32_t *c, int count, uint8_t *out, int from, int n) {
    for (int i = from; i < n; i++) {
        int32_t acc = HALF;
        for (int t = 0; t < count; t++) acc += rows[t][i] * c[t];
        out[i] = clip8(acc);
    }
}

#if SID_X86
/* 32 bytes of an output row, in 32-bit lanes. */
SID_AVX2 static inline __m256i combine32(const uint8_t *const *rows, const int32_t *c, int count, int i) {
    const __m256i half = _mm256_set1_epi32(HALF);
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int t = 0; t < count; t++) {
        const __m256i k = _mm256_set1_epi32(c[t]);
        const uint8_t *r = rows[t] + i;
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)r)), k));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 8))), k));
        a2 = _mm256_add_epi32(a2,
                              _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 16))), k));
        a3 = _mm256_add_epi32(a3,
                              _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 24))), k));
    }
    a0 = _mm256_srai_epi32(a0, PRECISION_BITS);
    a1 = _mm256_srai_epi32(a1, PRECISION_BITS);
    a2 = _mm256_srai_epi32(a2, PRECISION_BITS);
    a3 = _mm256_srai_epi32(a3, PRECISION_BITS);
    /* packs keeps the sign and packus clips to 0..255, as clip8 does; per 128-bit lane they interleave groups
     * of four, which the permutation puts back in order */
    __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
    return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The row in blocks of 32 bytes, the last one overlapping the previous where n is not a multiple of 32 (a byte
 * depends on its position alone, so those written twice are written the same). */
SID_AVX2 static void combine_avx2(const uint8_t *const *rows, const int32_t *c, int count, uint8_t *out, int n) {
    if (n < 32) {
        combine_c(rows, c, count, out, 0, n);
        return;
    }
    for (int i = 0; i < n; i += 32) {
        int at = i + 32 <= n ? i : n - 32;
        _mm256_storeu_si256((__m256i *)(out + at), combine32(rows, c, count, at));
    }
}
#endif

/* Output row q of a pass: the sum of rows `in` + (first[q] + t) * stride (pixels) with the weights of q. */
static void combine(const uint32_t *in, ptrdiff_t stride, const int *first, const int *count, const int32_t *coef,
                    int ksize, int q, const uint8_t **rows, uint32_t *out, int pixels, int simd) {
    for (int t = 0; t < count[q]; t++) rows[t] = (const uint8_t *)(in + (first[q] + t) * stride);
    const int32_t *c = coef + (size_t)q * ksize;
#if SID_X86
    if (simd) {
        combine_avx2(rows, c, count[q], (uint8_t *)out, 4 * pixels);
        return;
    }
#endif
    combine_c(rows, c, count[q], (uint8_t *)out, 0, 4 * pixels);
}

/* ------------------------------------------------------------------------------------------------ */
/* Grayscale and solarization                                                                       */
/* ------------------------------------------------------------------------------------------------ */

/* PIL's convert("L") (ITU-R 601-2 luma in 16-bit fixed point, rounded) into each of the three planes. */
static void grayscale_c(const uint32_t *px, ptrdiff_t from, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b) {
    for (ptrdiff_t i = from; i < count; i++) {
        uint32_t p = px[i];
        r[i] = g[i] = b[i] = (uint8_t)sid_luma((int)(p & 255), (int)((p >> 8) & 255), (int)((p >> 16) & 255));
    }
}

#if SID_X86
/* Eight pixels at a time (sid_luma_avx2, exact). */
SID_AVX2 static void grayscale_avx2(const uint32_t *px, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b) {
    const __m256i m255 = _mm256_set1_epi32(255);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256i p = _mm256_loadu_si256((const __m256i *)(px + i));
        __m256 red = _mm256_cvtepi32_ps(_mm256_and_si256(p, m255));
        __m256 green = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8), m255));
        __m256 blue = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 16), m255));
        __m256i l = _mm256_cvttps_epi32(sid_luma_avx2(red, green, blue));
        __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(l), _mm256_extracti128_si256(l, 1));
        __m128i bytes = _mm_packus_epi16(words, words);
        _mm_storel_epi64((__m128i *)(r + i), bytes);
        _mm_storel_epi64((__m128i *)(g + i), bytes);
        _mm_storel_epi64((__m128i *)(b + i), bytes);
    }
    grayscale_c(px, i, count, r, g, b);
}
#endif

static void grayscale(const uint32_t *px, ptrdiff_t count, uint8_t *const *planes, int simd) {
#if SID_X86
    if (simd) {
        grayscale_avx2(px, count, planes[0], planes[1], planes[2]);
        return;
    }
#else
    (void)simd;
#endif
    grayscale_c(px, 0, count, planes[0], planes[1], planes[2]);
}

/* PIL's solarize at 128: levels of 128 and above inverted. */
static void solarize(uint8_t *v, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) v[i] = v[i] >= 128 ? (uint8_t)(255 - v[i]) : v[i];
}

/* ------------------------------------------------------------------------------------------------ */
/* The blur: torchvision's gaussian_blur on a uint8 image, separably                                */
/* ------------------------------------------------------------------------------------------------ */

/* torchvision pads by reflection (the edge not repeated) and convolves in float32 with the outer product of
 * the 1-d kernel, then rounds half to even. Here the kernel runs along the rows, then down the columns, each
 * output as k[h] v[h] + sum over t < h of k[t] (v[t] + v[2 h - t]) (the kernel is symmetric) in single
 * precision, without the taps below 2^-24 of the centre's (each changes a sum by less than its rounding). The
 * sums round otherwise than torch's, so a level on a rounding boundary can move by one. */

/* The half width of the kernel's taps that count. */
static int blur_reach(const float *k, int taps) {
    const int h = taps / 2;
    int reach = 0;
    while (reach < h && k[h - reach - 1] >= k[h] * 0x1p-24f) reach++;
    return reach;
}

static inline int reflect(int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; }

/* Outputs [from, n) of a pass with half width h: output x reads at[t] + x for t in [0, 2 h]. */
static void blur_c(const float *const *at, const float *k, int h, uint8_t *levels, float *out, int from, int n) {
    for (int x = from; x < n; x++) {
        float acc = k[h] * at[h][x];
        for (int t = 0; t < h; t++) acc += k[t] * (at[t][x] + at[2 * h - t][x]);
        if (levels) {
            acc = nearbyintf(acc);
            levels[x] = (uint8_t)(acc <= 0.0f ? 0.0f : acc >= 255.0f ? 255.0f : acc);
        } else {
            out[x] = acc;
        }
    }
}

#if SID_X86
/* Outputs x .. x + 8 * blocks - 1 (blocks 1 or 4), with one accumulator per block of eight. */
SID_AVX2 static inline void blur_blocks(const float *const *at, const float *k, int h, int x, int blocks, __m256 *acc) {
    const __m256 centre = _mm256_set1_ps(k[h]);
    for (int b = 0; b < blocks; b++) acc[b] = _mm256_mul_ps(centre, _mm256_loadu_ps(at[h] + x + 8 * b));
    for (int t = 0; t < h; t++) {
        const __m256 w = _mm256_set1_ps(k[t]);
        const float *left = at[t] + x, *right = at[2 * h - t] + x;
        for (int b = 0; b < blocks; b++)
            acc[b] = _mm256_add_ps(acc[b], _mm256_mul_ps(w, _mm256_add_ps(_mm256_loadu_ps(left + 8 * b),
                                                                          _mm256_loadu_ps(right + 8 * b))));
    }
}

SID_AVX2 static inline void blur_store(__m256 acc, uint8_t *levels, float *out, int x) {
    if (!levels) {
        _mm256_storeu_ps(out + x, acc);
        return;
    }
    __m256 v = _mm256_round_ps(acc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256i l = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0f)));
    __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(l), _mm256_extracti128_si256(l, 1));
    _mm_storel_epi64((__m128i *)(levels + x), _mm_packus_epi16(words, words));
}

/* Blocks of 32 outputs, then of 8, the last overlapping the previous one (as in the resize); n >= 8. */
SID_AVX2 static void blur_avx2(const float *const *at, const float *k, int h, uint8_t *levels, float *out, int n) {
    __m256 acc[4];
    int x = 0;
    for (; x + 32 <= n; x += 32) {
        blur_blocks(at, k, h, x, 4, acc);
        for (int b = 0; b < 4; b++) blur_store(acc[b], levels, out, x + 8 * b);
    }
    for (; x < n; x += 8) {
        int from = x + 8 <= n ? x : n - 8;
        blur_blocks(at, k, h, from, 1, acc);
        blur_store(acc[0], levels, out, from);
    }
}
#endif

/* One pass: into `levels` (rounded) when given, else into `out`. */
static void blur_pass(const float *const *at, const float *k, int h, uint8_t *levels, float *out, int n, int simd) {
#if SID_X86
    if (simd && n >= 8) {
        blur_avx2(at, k, h, levels, out, n);
        return;
    }
#else
    (void)simd;
#endif
    blur_c(at, k, h, levels, out, 0, n);
}

/* Levels to floats. */
#if SID_X86
SID_AVX2 static void widen_avx2(const uint8_t *in, float *out, int n) {
    for (int x = 0; x < n; x += 8) {
        int from = x + 8 <= n ? x : n - 8;
        __m256i levels = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in + from)));
        _mm256_storeu_ps(out + from, _mm256_cvtepi32_ps(levels));
    }
}
#endif

static void widen(const uint8_t *in, float *out, int n, int simd) {
#if SID_X86
    if (simd && n >= 8) {
        widen_avx2(in, out, n);
        return;
    }
#else
    (void)simd;
#endif
    for (int x = 0; x < n; x++) out[x] = (float)in[x];
}

/* Blur one size x size plane in place with the kernel k (2 h + 1 taps, centre k[h]). Scratch: `grid`, size x
 * size floats; `row`, size + 2 h floats; `at`, 2 h + 1 pointers. */
static void blur_plane(uint8_t *plane, int size, const float *k, int h, float *grid, float *row, const float **at,
                       int simd) {
    for (int t = 0; t <= 2 * h; t++) at[t] = row + t;
    for (int y = 0; y < size; y++) {
        const uint8_t *in = plane + (size_t)y * size;
        widen(in, row + h, size, simd);
        for (int i = 1; i <= h; i++) {
            row[h - i] = row[h + i];
            row[h + size - 1 + i] = row[h + size - 1 - i];
        }
        blur_pass(at, k, h, NULL, grid + (size_t)y * size, size, simd);
    }
    for (int y = 0; y < size; y++) {
        for (int t = 0; t <= 2 * h; t++) at[t] = grid + (size_t)reflect(y - h + t, size) * size;
        blur_pass(at, k, h, plane + (size_t)y * size, NULL, size, simd);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* The view                                                                                         */
/* ------------------------------------------------------------------------------------------------ */

int sid_view(const view_job *job, sid_workspace *ws, int simd) {
    const int size = job->size, side = job->side, width = job->width, height = job->height;
    const size_t pixels = (size_t)size * size;
    /* PIL's bound on the taps of an output (ksize) */
    const double sx = (double)width / size, sy = (double)height / size;
    const int kx = (int)ceil(sx > 1.0 ? sx : 1.0) * 2 + 1, ky = (int)ceil(sy > 1.0 ? sy : 1.0) * 2 + 1;
    const int reach = job->blur_taps > 1 ? blur_reach(job->blur, job->blur_taps) : 0;
    const int kmax = kx > ky ? kx : ky, longer = height > size ? height : size;
    /* The scratch: per axis the taps' first pixels, counts and weights; the weights of one output in double;
     * three images between the passes; the view; the rows a pass reads; and for the blur, a plane of floats
     * and a padded row. */
    enum { PARTS = 12 };
    const size_t sizes[PARTS] = {
        sizeof(int) * 2 * (size_t)size, sizeof(int) * 2 * (size_t)size,
        sizeof(int32_t) * (size_t)size * kx, sizeof(int32_t) * (size_t)size * ky,
        sizeof(double) * kmax,
        sizeof(uint32_t) * (size_t)width * longer, sizeof(uint32_t) * (size_t)size * (height > width ? height : width),
        sizeof(uint32_t) * (size_t)size * longer, sizeof(uint32_t) * pixels,
        sizeof(const void *) * (kmax > 2 * reach + 1 ? kmax : 2 * reach + 1),
        reach ? sizeof(float) * pixels : 0, reach ? sizeof(float) * (size + 2 * reach) : 0,
    };
    size_t total = 0;
    for (int i = 0; i < PARTS; i++) total += sid_align32(sizes[i]);
    if (sid_workspace_reserve(ws, total)) return -1;
    void *part[PARTS];
    char *next = ws->mem;
    for (int i = 0; i < PARTS; i++) {
        part[i] = next;
        next += sid_align32(sizes[i]);
    }
    int *xfirst = part[0], *xcount = xfirst + size, *yfirst = part[1], *ycount = yfirst + size;
    int32_t *xcoef = part[2], *ycoef = part[3];
    uint32_t *view = part[8];
    const void **at = part[9];

    pil_taps(width, size, kx, xfirst, xcount, xcoef, part[4]);
    pil_taps(height, size, ky, yfirst, ycount, ycoef, part[4]);
    /* Each pass is a weighted sum of rows; the one along the crop's rows runs on its transpose, and flips by
     * writing output column q at size - 1 - q. */
    const uint32_t *crop = job->sample + (size_t)job->top * side + job->left;
    const uint8_t **taps = (const uint8_t **)at;
    uint32_t *first = part[5], *second = part[6], *third = part[7];
    if (job->vertical_first) {
        /* down the crop's columns (`first`, size x width), transposed (`second`), along its rows (`third`,
         * the view transposed), transposed into the view */
        for (int q = 0; q < size; q++)
            combine(crop, side, yfirst, ycount, ycoef, ky, q, taps, first + (size_t)q * width, width, simd);
        sid_transpose(first, width, size, width, second, size, NULL, simd);
        for (int q = 0; q < size; q++)
            combine(second, size, xfirst, xcount, xcoef, kx, q, taps,
                    third + (size_t)(job->hflip ? size - 1 - q : q) * size, size, simd);
        sid_transpose(third, size, size, size, view, size, NULL, simd);
    } else {
        /* along the rows of the crop that the second pass reads (PIL's ybox_first .. ybox_last): transposed
         * (`first`, width x n), resized (`second`, size x n), transposed back (`third`, n x size); then down
         * the columns into the view */
        const int y0 = yfirst[0], n = yfirst[size - 1] + ycount[size - 1] - y0;
        for (int q = 0; q < size; q++) yfirst[q] -= y0;
        sid_transpose(crop + (size_t)y0 * side, side, n, width, first, n, NULL, simd);
        for (int q = 0; q < size; q++)
            combine(first, n, xfirst, xcount, xcoef, kx, q, taps, second + (size_t)(job->hflip ? size - 1 - q : q) * n,
                    n, simd);
        sid_transpose(second, n, size, n, third, size, NULL, simd);
        for (int q = 0; q < size; q++)
            combine(third, size, yfirst, ycount, ycoef, ky, q, taps, view + (size_t)q * size, size, simd);
    }

    if (job->jitter.count) sid_jitter(view, (ptrdiff_t)pixels, &job->jitter, simd);
    uint8_t *const *planes = job->planes;
    if (job->grayscale)
        grayscale(view, (ptrdiff_t)pixels, planes, simd);
    else
        sid_to_planes(view, (ptrdiff_t)pixels, planes[0], planes[1], planes[2], simd);
    for (int c = 0; c < 3; c++) {
        if (reach)
            blur_plane(planes[c], size, job->blur + job->blur_taps / 2 - reach, reach, part[10], part[11],
                       (const float **)at, simd);
        if (job->solarize) solarize(planes[c], (ptrdiff_t)pixels);
    }
    return 0;
}
