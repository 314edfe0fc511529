/* The warp kernels: portable and AVX2 (see kernels.h). */

#include <math.h>
#include <string.h>

#include "kernels.h"

#if SID_X86
#include <immintrin.h>
#endif

static inline uint32_t lerp_pixel(uint64_t top, uint64_t bottom, int fu, int fv) {
    uint32_t out = 0;
    for (int c = 0; c < 4; c++) {
        int a0 = (int)((top >> (8 * c)) & 255), a1 = (int)((top >> (32 + 8 * c)) & 255);
        int b0 = (int)((bottom >> (8 * c)) & 255), b1 = (int)((bottom >> (32 + 8 * c)) & 255);
        int t = a0 * (64 - fu) + a1 * fu;
        int b = b0 * (64 - fu) + b1 * fu;
        int r = t + (((b - t) * (fv << 9) + 0x4000) >> 15);
        out |= (uint32_t)((r + 32) >> 6) << (8 * c);
    }
    return out;
}

/* Float to the nearest integer, ties to even (as cvtps2dq); INT32_MIN when out of range or NaN. */
static inline int32_t round_to_int(float v) {
    if (!(v > -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
    return (int32_t)lrintf(v);
}

/* Fixed-point source position of output pixel x of a row whose offsets are (bx, by). */
static inline void position(const warp_job *j, float bx, float by, int x, int32_t *uu, int32_t *vv) {
    *uu = round_to_int((j->m[0] * (float)x + bx) * 64.0f);
    *vv = round_to_int((j->m[3] * (float)x + by) * 64.0f);
}

static inline int in_bounds(const warp_job *j, int32_t uu, int32_t vv) {
    int iu = uu >> 6, iv = vv >> 6;
    return iu >= 0 && iv >= 0 && iu <= j->width - 2 && iv <= j->height - 2;
}

static inline uint32_t sample(const warp_job *j, int32_t uu, int32_t vv) {
    const uint32_t *p = j->src + (size_t)(vv >> 6) * j->width + (uu >> 6);
    uint64_t top = p[0] | ((uint64_t)p[1] << 32);
    uint64_t bottom = p[j->width] | ((uint64_t)p[j->width + 1] << 32);
    return lerp_pixel(top, bottom, uu & 63, vv & 63);
}

/* One footprint constraint on output pixel x of row y: coordinate c = a (x + 0.5) + b (y + 0.5) + k,
 * summed in this order in double precision, tested as c >= 0 (upper == 0) or c < side (upper == 1). */
static inline int holds(double a, double byk, double k, double side, int upper, int x) {
    double c = a * (x + 0.5) + byk + k;
    return upper ? c < side : c >= 0.0;
}

/* Narrow [*lo, *hi) to the pixels of a row (0 <= x < n) where one constraint holds. It holds on a
 * prefix or a suffix of the row; a first guess from the real-valued boundary is corrected by walking,
 * which is exact whatever the guess. */
static void clip_span(double a, double byk, double k, double side, int upper, int n, int *lo, int *hi) {
    if (a == 0.0) {
        if (!holds(a, byk, k, side, upper, 0)) *lo = *hi = 0;
        return;
    }
    double boundary = ((upper ? side : 0.0) - byk - k) / a - 0.5;
    int x = boundary > 0.0 ? (boundary < (double)n ? (int)boundary : n) : 0;
    if ((a > 0.0) != upper) {
        /* false then true: the span starts at the first x where it holds */
        while (x > 0 && holds(a, byk, k, side, upper, x - 1)) x--;
        while (x < n && !holds(a, byk, k, side, upper, x)) x++;
        if (x > *lo) *lo = x;
    } else {
        /* true then false: the span ends at the first x where it fails */
        while (x > 0 && !holds(a, byk, k, side, upper, x - 1)) x--;
        while (x < n && holds(a, byk, k, side, upper, x)) x++;
        if (x < *hi) *hi = x;
    }
}

/* The pixels of row y inside the footprint, [*lo, *hi) (empty when *lo >= *hi). */
static void row_span(const warp_job *j, int y, int *lo, int *hi) {
    *lo = 0;
    *hi = j->size;
    if (!j->has_footprint) return;
    double yc = y + 0.5;
    clip_span(j->f[0], j->f[1] * yc, j->f[2], j->side, 0, j->size, lo, hi);
    clip_span(j->f[0], j->f[1] * yc, j->f[2], j->side, 1, j->size, lo, hi);
    clip_span(j->f[3], j->f[4] * yc, j->f[5], j->side, 0, j->size, lo, hi);
    clip_span(j->f[3], j->f[4] * yc, j->f[5], j->side, 1, j->size, lo, hi);
    if (*lo > *hi) *lo = *hi;
}

/* Whether every pixel of [lo, hi) of a row is in bounds: by monotonicity, whether both ends are. */
static int span_in_bounds(const warp_job *j, float bx, float by, int lo, int hi) {
    int32_t u0, v0, u1, v1;
    position(j, bx, by, lo, &u0, &v0);
    position(j, bx, by, hi - 1, &u1, &v1);
    return in_bounds(j, u0, v0) && in_bounds(j, u1, v1);
}

static void warp_pixels_c(const warp_job *j, float bx, float by, uint32_t *row, int x0, int x1) {
    for (int x = x0; x < x1; x++) {
        int32_t uu, vv;
        position(j, bx, by, x, &uu, &vv);
        row[x] = in_bounds(j, uu, vv) ? sample(j, uu, vv) : 0;
    }
}

/* Set up output row y: its source offsets (bx, by) and its footprint span [*lo, *hi), outside of
 * which the row is zeroed here. Returns the row. */
static uint32_t *start_row(const warp_job *j, int y, float *bx, float *by, int *lo, int *hi) {
    uint32_t *row = j->dst + (size_t)y * j->size;
    *bx = j->m[1] * (float)y + j->m[2];
    *by = j->m[4] * (float)y + j->m[5];
    row_span(j, y, lo, hi);
    memset(row, 0, sizeof(uint32_t) * (size_t)*lo);
    memset(row + *hi, 0, sizeof(uint32_t) * (size_t)(j->size - *hi));
    return row;
}

static void warp_c(const warp_job *j) {
    for (int y = 0; y < j->size; y++) {
        float bx, by;
        int lo, hi;
        uint32_t *row = start_row(j, y, &bx, &by, &lo, &hi);
        warp_pixels_c(j, bx, by, row, lo, hi);
    }
}

#if SID_X86
/* Four pixels: each 64-bit lane of top/bottom holds a pixel's left and right neighbours. */
SID_AVX2 static inline __m256i lerp4_avx2(__m256i top, __m256i bottom, __m128i weights) {
    /* weights: per pixel, (fv << 9) << 16 | (fu << 8 | (64 - fu)). */
    const __m256i interleave = _mm256_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15,
                                                0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    const __m256i low16 = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 8, 9, 8, 9, 8, 9, 8, 9,
                                           0, 1, 0, 1, 0, 1, 0, 1, 8, 9, 8, 9, 8, 9, 8, 9);
    const __m256i high16 = _mm256_setr_epi8(2, 3, 2, 3, 2, 3, 2, 3, 10, 11, 10, 11, 10, 11, 10, 11,
                                            2, 3, 2, 3, 2, 3, 2, 3, 10, 11, 10, 11, 10, 11, 10, 11);
    __m256i w = _mm256_cvtepu32_epi64(weights);
    __m256i wh = _mm256_shuffle_epi8(w, low16), wv = _mm256_shuffle_epi8(w, high16);
    __m256i t = _mm256_maddubs_epi16(_mm256_shuffle_epi8(top, interleave), wh);
    __m256i b = _mm256_maddubs_epi16(_mm256_shuffle_epi8(bottom, interleave), wh);
    __m256i r = _mm256_add_epi16(t, _mm256_mulhrs_epi16(_mm256_sub_epi16(b, t), wv));
    return _mm256_srli_epi16(_mm256_add_epi16(r, _mm256_set1_epi16(32)), 6);
}

/* The 8-byte neighbour pairs at four pixel offsets, as one vector. */
SID_AVX2 static inline __m256i load_pairs(const uint32_t *base, const int32_t *idx) {
    __m128i a = _mm_loadl_epi64((const __m128i *)(base + idx[0]));
    a = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(a), (const double *)(base + idx[1])));
    __m128i b = _mm_loadl_epi64((const __m128i *)(base + idx[2]));
    b = _mm_castpd_si128(_mm_loadh_pd(_mm_castsi128_pd(b), (const double *)(base + idx[3])));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

/* Pixels [x0, x1) of a row, 8 <= x1 - x0 <= WARP_CHUNK, in blocks of 8, the last of which may overlap
 * the one before (a pixel's value depends on its x alone, so those written twice are written the
 * same); `checked`: test each pixel's bounds. Two passes: the source offsets and weights of every pixel first, then the reads and
 * the interpolation. Split so, each pass is a short chain of operations per block of pixels, which
 * the core overlaps across blocks; in one pass the chain from coordinates to loads to output is too
 * long for that. */
#define WARP_CHUNK 256

SID_AVX2 static inline __attribute__((always_inline)) void warp_run_avx2(const warp_job *j, float fbx, float fby,
                                                                         uint32_t *row, int x0, int x1, int checked) {
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 ax = _mm256_set1_ps(j->m[0]), ay = _mm256_set1_ps(j->m[3]), s64 = _mm256_set1_ps(64.0f);
    const __m256 bx = _mm256_set1_ps(fbx), by = _mm256_set1_ps(fby);
    const __m256i wmax = _mm256_set1_epi32(j->width - 2), hmax = _mm256_set1_epi32(j->height - 2);
    const __m256i zero = _mm256_setzero_si256(), c63 = _mm256_set1_epi32(63), c64 = _mm256_set1_epi32(64);
    const __m256i stride = _mm256_set1_epi32(j->width);
    const uint32_t *below = j->src + j->width;
    int32_t offsets[WARP_CHUNK] __attribute__((aligned(32)));
    uint32_t weights[WARP_CHUNK] __attribute__((aligned(32)));
    int32_t outside[WARP_CHUNK] __attribute__((aligned(32)));
    const int n = x1 - x0;
    for (int k = 0; k < n; k += 8) {
        __m256 xs = _mm256_add_ps(_mm256_set1_ps((float)(x0 + (k + 8 <= n ? k : n - 8))), iota);
        __m256 u = _mm256_add_ps(_mm256_mul_ps(ax, xs), bx), v = _mm256_add_ps(_mm256_mul_ps(ay, xs), by);
        /* cvtps2dq gives INT32_MIN out of range, as round_to_int does. */
        __m256i uu = _mm256_cvtps_epi32(_mm256_mul_ps(u, s64)), vv = _mm256_cvtps_epi32(_mm256_mul_ps(v, s64));
        __m256i iu = _mm256_srai_epi32(uu, 6), iv = _mm256_srai_epi32(vv, 6);
        __m256i bad = zero;
        if (checked)
            bad = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpgt_epi32(zero, iu), _mm256_cmpgt_epi32(iu, wmax)),
                _mm256_or_si256(_mm256_cmpgt_epi32(zero, iv), _mm256_cmpgt_epi32(iv, hmax)));
        __m256i fu = _mm256_and_si256(uu, c63), fv = _mm256_and_si256(vv, c63);
        /* per pixel: (fv << 9) << 16 | (fu << 8 | (64 - fu)), the layout lerp4_avx2 takes */
        __m256i w = _mm256_or_si256(_mm256_or_si256(_mm256_slli_epi32(fu, 8), _mm256_sub_epi32(c64, fu)),
                                    _mm256_slli_epi32(fv, 25));
        _mm256_store_si256((__m256i *)(offsets + k),
                           _mm256_andnot_si256(bad, _mm256_add_epi32(_mm256_mullo_epi32(iv, stride), iu)));
        _mm256_store_si256((__m256i *)(weights + k), w);
        if (checked) _mm256_store_si256((__m256i *)(outside + k), bad);
    }
    for (int k = 0; k < n; k += 8) {
        __m256i r0 = lerp4_avx2(load_pairs(j->src, offsets + k), load_pairs(below, offsets + k),
                                _mm_load_si128((const __m128i *)(weights + k)));
        __m256i r1 = lerp4_avx2(load_pairs(j->src, offsets + k + 4), load_pairs(below, offsets + k + 4),
                                _mm_load_si128((const __m128i *)(weights + k + 4)));
        __m256i pixels = _mm256_permute4x64_epi64(_mm256_packus_epi16(r0, r1), 0xD8);
        if (checked) pixels = _mm256_andnot_si256(_mm256_load_si256((const __m256i *)(outside + k)), pixels);
        _mm256_storeu_si256((__m256i *)(row + x0 + (k + 8 <= n ? k : n - 8)), pixels);
    }
}

SID_AVX2 static void warp_avx2(const warp_job *j) {
    for (int y = 0; y < j->size; y++) {
        float bx, by;
        int lo, hi;
        uint32_t *row = start_row(j, y, &bx, &by, &lo, &hi);
        if (lo >= hi) continue;
        if (hi - lo < 8) {
            warp_pixels_c(j, bx, by, row, lo, hi);
            continue;
        }
        /* Chunks; a last one shorter than 8 pixels overlaps the one before, as blocks do. */
        const int checked = !span_in_bounds(j, bx, by, lo, hi);
        for (int x = lo; x < hi; x += WARP_CHUNK) {
            const int end = x + WARP_CHUNK < hi ? x + WARP_CHUNK : hi;
            /* inlined twice, so that the bounds tests are compiled out where the span needs none */
            if (checked)
                warp_run_avx2(j, bx, by, row, end - x < 8 ? end - 8 : x, end, 1);
            else
                warp_run_avx2(j, bx, by, row, end - x < 8 ? end - 8 : x, end, 0);
        }
        /* The next row starts in portable code (row_span): leaving the upper halves of the vector registers
         * dirty would make each of its SSE instructions wait on them, on Intel CPUs (twice the warp's time). */
        _mm256_zeroupper();
    }
}
#endif

void sid_warp(const warp_job *job, int simd) {
#if SID_X86
    if (simd) {
        warp_avx2(job);
        return;
    }
#endif
    warp_c(job);
}
