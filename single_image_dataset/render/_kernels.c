/*
 * Native kernels of the fast renderer: one bilinear warp with the reference's black fill, and
 * PIL's colour-jitter arithmetic, both on RGBX pixels (4 bytes, the layout of a PIL "RGB" image).
 *
 * Every kernel has a portable C version and, on x86-64 CPUs with AVX2, a vectorised one chosen at
 * run time. The two give the same bytes: the vector code does the same single-precision operations
 * in the same order (the build turns off FMA contraction), so a sample does not depend on the CPU.
 * set_simd(False) forces the portable code, for the tests that check this.
 *
 * Built as an optional extension: when it cannot be compiled, render/fast.py uses OpenCV instead.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define SID_X86 1
#include <immintrin.h>
#define SID_AVX2 __attribute__((target("avx2,fma")))
#else
#define SID_X86 0
#endif

static int use_simd = 0;

/* ------------------------------------------------------------------------------------------------ */
/* Warp                                                                                              */
/* ------------------------------------------------------------------------------------------------ */

/* Output pixel (x, y) reads the source at M (x, y) in pixel-index coordinates (OpenCV's convention),
 * rounded to 1/64 pixel, interpolated bilinearly in fixed point:
 *   top = a0 (64 - fu) + a1 fu,  bottom likewise,  r = top + (((bottom - top) (fv << 9) + 2^14) >> 15),
 *   out = (r + 32) >> 6.
 * A pixel whose 2x2 neighbourhood leaves the source is 0. With a footprint, a pixel whose centre
 * (x + 0.5, y + 0.5) maps, by F in double precision, outside [0, side)^2 is 0 too: the test PIL's
 * Image.transform applies before it fills.
 *
 * Both tests are monotone along a row (each coordinate is an affine function of x, and rounding is
 * monotone), so each row is split into a span found from its ends: zeros outside the footprint's
 * span, and inside it pixels that need no bounds test when both ends are in bounds. */

typedef struct {
    const uint32_t *src;
    int height, width;
    float m[6];
    int has_footprint;
    double f[6];
    double side;
    uint32_t *dst;
    int size;
} warp_job;

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

/* Pixels [x0, x1) of a row, x1 - x0 a multiple of 8 and at most WARP_CHUNK; `checked`: test each
 * pixel's bounds. Two passes: the source offsets and weights of every pixel first, then the reads and
 * the interpolation. Split so, each pass is a short chain of operations per block of pixels, which
 * the core overlaps across blocks; in one pass the chain from coordinates to loads to output is too
 * long for that. */
#define WARP_CHUNK 256

SID_AVX2 static inline void warp_run_avx2(const warp_job *j, float fbx, float fby, uint32_t *row, int x0, int x1,
                                          int checked) {
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
        __m256 xs = _mm256_add_ps(_mm256_set1_ps((float)(x0 + k)), iota);
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
        _mm256_store_si256((__m256i *)(outside + k), bad);
    }
    for (int k = 0; k < n; k += 8) {
        __m256i r0 = lerp4_avx2(load_pairs(j->src, offsets + k), load_pairs(below, offsets + k),
                                _mm_load_si128((const __m128i *)(weights + k)));
        __m256i r1 = lerp4_avx2(load_pairs(j->src, offsets + k + 4), load_pairs(below, offsets + k + 4),
                                _mm_load_si128((const __m128i *)(weights + k + 4)));
        __m256i pixels = _mm256_permute4x64_epi64(_mm256_packus_epi16(r0, r1), 0xD8);
        __m256i bad = _mm256_load_si256((const __m256i *)(outside + k));
        _mm256_storeu_si256((__m256i *)(row + x0 + k), _mm256_andnot_si256(bad, pixels));
    }
}

/* Ask for the cache lines that output row y will read: one per source row its segment crosses (or
 * one per 16 pixels along a source row). Consecutive output rows read nearly the same lines, since a
 * row's segment moves by at most sqrt(2) source pixels per row, so asking for every fourth row, well
 * ahead, covers the lines in between. Without it, a source far larger than the cache makes the
 * rotated reads wait for memory one by one. */
static void prefetch_row(const warp_job *j, int y) {
    if (y >= j->size) return;
    const int n = j->size;
    float u = j->m[1] * (float)y + j->m[2], v = j->m[4] * (float)y + j->m[5];
    const float du = j->m[0] * (float)(n - 1), dv = j->m[3] * (float)(n - 1);
    float steps_v = fabsf(dv), steps_u = fabsf(du) / 16.0f;
    float steps = steps_v > steps_u ? steps_v : steps_u;
    if (!(steps < 4.0f * (float)n)) return; /* degenerate or huge scales: leave it to the hardware */
    int k = (int)steps + 1;
    const float su = du / (float)k, sv = dv / (float)k;
    const int umax = j->width - 2, vmax = j->height - 2;
    for (int i = 0; i <= k; i++, u += su, v += sv) {
        /* clamped as floats first: converting an out-of-range float to int is undefined */
        int iu = u > 0.0f ? (u < (float)umax ? (int)u : umax) : 0;
        int iv = v > 0.0f ? (v < (float)vmax ? (int)v : vmax) : 0;
        __builtin_prefetch(j->src + (size_t)iv * j->width + iu);
    }
}

SID_AVX2 static void warp_avx2(const warp_job *j) {
    for (int y = 0; y < 12; y += 4) prefetch_row(j, y);
    for (int y = 0; y < j->size; y++) {
        if (y % 4 == 0) prefetch_row(j, y + 12);
        float bx, by;
        int lo, hi;
        uint32_t *row = start_row(j, y, &bx, &by, &lo, &hi);
        if (lo >= hi) continue;
        if (hi - lo < 8) {
            warp_pixels_c(j, bx, by, row, lo, hi);
            continue;
        }
        /* Whole chunks, then the last 8 pixels, which may overlap the previous chunk: a pixel's value
         * depends on its x alone, so those written twice are written the same. */
        int checked = !span_in_bounds(j, bx, by, lo, hi), whole = lo + ((hi - lo) & ~7);
        for (int x = lo; x < whole; x += WARP_CHUNK)
            warp_run_avx2(j, bx, by, row, x, x + WARP_CHUNK < whole ? x + WARP_CHUNK : whole, checked);
        if (whole < hi) warp_run_avx2(j, bx, by, row, hi - 8, hi, checked);
    }
}
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Colour jitter: torchvision's adjust_* on a PIL image, i.e. PIL's ImageEnhance and HSV arithmetic  */
/* ------------------------------------------------------------------------------------------------ */

/* The ops of one sample, in order. Contrast needs the mean luma of the image it is applied to, so
 * the ops before it run in one pass that also sums the luma, and the rest in a second pass; without
 * contrast one pass does all. Each pass converts a pixel once and applies its ops in registers. */
enum { OP_BRIGHTNESS = 0, OP_CONTRAST = 1, OP_SATURATION = 2, OP_HUE = 3 };

typedef struct {
    int count;
    int code[4];
    float alpha[4]; /* blend factor; for the hue, the byte shift 0-255 */
} jitter_ops;

/* PIL's ImagingBlend(grey, image, alpha) for one channel: grey + alpha (value - grey) in single
 * precision, then 0 at or below 0, 255 at or above 255, truncated in between. */
static inline int blend8(int grey, int value, float alpha) {
    float t = (float)grey + alpha * (float)(value - grey);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (int)t;
}

/* PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static inline int luma(int r, int g, int b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

/* PIL's RGB -> HSV -> RGB round trip (Convert.c rgb2hsv_row, hsv2rgb) with the hue byte shifted by
 * `shift`, in the closed form of the HSV hexagon so that it needs two divisions and no branches:
 * with V the max, C the chroma and H in sextants, channel n (R 5, G 3, B 1) is
 *   V - clamp(min(K, 4 C - K), 0, C),  K = (n C + C H) mod 6 C.
 * PIL's quantisation is kept: the hue and the saturation are truncated to bytes (C becomes
 * V * trunc(255 C / V) / 255) and the results rounded. Single precision throughout, where PIL mixes
 * in double: a value on a rounding boundary can move by one level. */
static const float HUE_BYTES_PER_SEXTANT = 255.0f / 6.0f, SEXTANTS_PER_HUE_BYTE = 6.0f / 255.0f,
                   INV_255 = 1.0f / 255.0f;

static inline void hue_pixel(int *pr, int *pg, int *pb, float shift) {
    float r = (float)*pr, g = (float)*pg, b = (float)*pb;
    float v = r > g ? r : g;
    v = v > b ? v : b;
    float m = r < g ? r : g;
    m = m < b ? m : b;
    float c = v - m;
    float x = r == v ? g - b : g == v ? (2.0f * c + b) - r : (4.0f * c + r) - g;
    x = x < 0.0f ? x + 6.0f * c : x;
    float hue = truncf((x * (1.0f / (c > 1.0f ? c : 1.0f))) * HUE_BYTES_PER_SEXTANT) + shift;
    hue = hue >= 256.0f ? hue - 256.0f : hue;
    float cs = v * (truncf((c / (v > 1.0f ? v : 1.0f)) * 255.0f) * INV_255);
    x = (hue * SEXTANTS_PER_HUE_BYTE) * cs;
    float out[3];
    for (int i = 0; i < 3; i++) {
        float k = (float)(5 - 2 * i) * cs + x;
        k = k >= 6.0f * cs ? k - 6.0f * cs : k;
        float w = 4.0f * cs - k;
        w = k < w ? k : w;
        w = w < cs ? w : cs;
        w = w > 0.0f ? w : 0.0f;
        out[i] = truncf((v + 0.5f) - w);
    }
    *pr = (int)out[0];
    *pg = (int)out[1];
    *pb = (int)out[2];
}

/* Apply ops [first, last) to every pixel; return the sum of the results' luma. */
static uint64_t jitter_pass_c(uint32_t *px, Py_ssize_t count, const jitter_ops *ops, int first, int last, int grey,
                              int want_sum) {
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint32_t p = px[i];
        int r = (int)(p & 255), g = (int)((p >> 8) & 255), b = (int)((p >> 16) & 255);
        for (int k = first; k < last; k++) {
            float a = ops->alpha[k];
            switch (ops->code[k]) {
                case OP_BRIGHTNESS:
                    r = blend8(0, r, a); g = blend8(0, g, a); b = blend8(0, b, a);
                    break;
                case OP_CONTRAST:
                    r = blend8(grey, r, a); g = blend8(grey, g, a); b = blend8(grey, b, a);
                    break;
                case OP_SATURATION: {
                    int l = luma(r, g, b);
                    r = blend8(l, r, a); g = blend8(l, g, a); b = blend8(l, b, a);
                    break;
                }
                default:
                    hue_pixel(&r, &g, &b, a);
                    break;
            }
        }
        if (want_sum) total += (uint64_t)luma(r, g, b);
        px[i] = (uint32_t)r | (uint32_t)g << 8 | (uint32_t)b << 16 | (p & 0xFF000000u);
    }
    return total;
}

#if SID_X86
/* Eight pixels at a time, channels as floats holding integers; the same operations in the same order
 * as the portable code, with selects for its branches, so the bytes are the same. */
SID_AVX2 static inline __m256 clip_trunc(__m256 t) {
    t = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    return _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
}

SID_AVX2 static inline __m256 blend8_avx2(__m256 grey, __m256 value, __m256 alpha) {
    return clip_trunc(_mm256_add_ps(grey, _mm256_mul_ps(alpha, _mm256_sub_ps(value, grey))));
}

/* Exact: every partial sum is an integer below 2^24. */
SID_AVX2 static inline __m256 luma_avx2(__m256 r, __m256 g, __m256 b) {
    __m256 t = _mm256_add_ps(_mm256_mul_ps(r, _mm256_set1_ps(19595.0f)), _mm256_mul_ps(g, _mm256_set1_ps(38470.0f)));
    t = _mm256_add_ps(_mm256_add_ps(t, _mm256_mul_ps(b, _mm256_set1_ps(7471.0f))), _mm256_set1_ps(32768.0f));
    return _mm256_floor_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.0f / 65536.0f)));
}

SID_AVX2 static inline __m256 trunc_ps(__m256 v) { return _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }

SID_AVX2 static inline __m256 eq_ps(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }

SID_AVX2 static inline void hue_avx2(__m256 *pr, __m256 *pg, __m256 *pb, __m256 shift) {
    const __m256 f1 = _mm256_set1_ps(1.0f), f6 = _mm256_set1_ps(6.0f), f256 = _mm256_set1_ps(256.0f);
    const __m256 zero = _mm256_setzero_ps();
    __m256 r = *pr, g = *pg, b = *pb;
    __m256 v = _mm256_max_ps(_mm256_max_ps(r, g), b), m = _mm256_min_ps(_mm256_min_ps(r, g), b);
    __m256 c = _mm256_sub_ps(v, m);
    __m256 x = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), c), r), g);
    x = _mm256_blendv_ps(x, _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), c), b), r), eq_ps(g, v));
    x = _mm256_blendv_ps(x, _mm256_sub_ps(g, b), eq_ps(r, v));
    x = _mm256_blendv_ps(x, _mm256_add_ps(x, _mm256_mul_ps(f6, c)), _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    __m256 hue = _mm256_mul_ps(x, _mm256_div_ps(f1, _mm256_max_ps(c, f1)));
    hue = _mm256_add_ps(trunc_ps(_mm256_mul_ps(hue, _mm256_set1_ps(HUE_BYTES_PER_SEXTANT))), shift);
    hue = _mm256_blendv_ps(hue, _mm256_sub_ps(hue, f256), _mm256_cmp_ps(hue, f256, _CMP_GE_OQ));
    __m256 cs = _mm256_div_ps(c, _mm256_max_ps(v, f1));
    cs = _mm256_mul_ps(v, _mm256_mul_ps(trunc_ps(_mm256_mul_ps(cs, _mm256_set1_ps(255.0f))), _mm256_set1_ps(INV_255)));
    x = _mm256_mul_ps(_mm256_mul_ps(hue, _mm256_set1_ps(SEXTANTS_PER_HUE_BYTE)), cs);
    __m256 c6 = _mm256_mul_ps(f6, cs), c4 = _mm256_mul_ps(_mm256_set1_ps(4.0f), cs);
    __m256 vhalf = _mm256_add_ps(v, _mm256_set1_ps(0.5f));
    __m256 *outs[3] = {pr, pg, pb};
    for (int i = 0; i < 3; i++) {
        __m256 k = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps((float)(5 - 2 * i)), cs), x);
        k = _mm256_blendv_ps(k, _mm256_sub_ps(k, c6), _mm256_cmp_ps(k, c6, _CMP_GE_OQ));
        /* min_ps(a, b) is a < b ? a : b and max_ps(a, b) is a > b ? a : b, as in hue_pixel. */
        __m256 w = _mm256_min_ps(k, _mm256_sub_ps(c4, k));
        w = _mm256_max_ps(_mm256_min_ps(w, cs), zero);
        *outs[i] = trunc_ps(_mm256_sub_ps(vhalf, w));
    }
}

/* The ops [first, last) on the channels of eight pixels. */
SID_AVX2 static inline void apply_ops_avx2(__m256 *r, __m256 *g, __m256 *b, const jitter_ops *ops, const __m256 *alpha,
                                           int first, int last, __m256 grey) {
    const __m256 f255 = _mm256_set1_ps(255.0f);
    for (int k = first; k < last; k++) {
        switch (ops->code[k]) {
            case OP_BRIGHTNESS: /* blend8 with grey 0: alpha v >= 0, so only the top clips */
                *r = _mm256_min_ps(trunc_ps(_mm256_mul_ps(alpha[k], *r)), f255);
                *g = _mm256_min_ps(trunc_ps(_mm256_mul_ps(alpha[k], *g)), f255);
                *b = _mm256_min_ps(trunc_ps(_mm256_mul_ps(alpha[k], *b)), f255);
                break;
            case OP_CONTRAST:
                *r = blend8_avx2(grey, *r, alpha[k]);
                *g = blend8_avx2(grey, *g, alpha[k]);
                *b = blend8_avx2(grey, *b, alpha[k]);
                break;
            case OP_SATURATION: {
                __m256 l = luma_avx2(*r, *g, *b);
                *r = blend8_avx2(l, *r, alpha[k]);
                *g = blend8_avx2(l, *g, alpha[k]);
                *b = blend8_avx2(l, *b, alpha[k]);
                break;
            }
            default:
                hue_avx2(r, g, b, alpha[k]);
                break;
        }
    }
}

SID_AVX2 static inline void unpack_avx2(__m256i p, __m256 *r, __m256 *g, __m256 *b) {
    const __m256i m255 = _mm256_set1_epi32(255);
    *r = _mm256_cvtepi32_ps(_mm256_and_si256(p, m255));
    *g = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 8), m255));
    *b = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(p, 16), m255));
}

SID_AVX2 static inline __m256i pack_avx2(__m256i p, __m256 r, __m256 g, __m256 b) {
    __m256i out = _mm256_or_si256(_mm256_cvttps_epi32(r), _mm256_slli_epi32(_mm256_cvttps_epi32(g), 8));
    out = _mm256_or_si256(out, _mm256_slli_epi32(_mm256_cvttps_epi32(b), 16));
    return _mm256_or_si256(out, _mm256_and_si256(p, _mm256_set1_epi32((int)0xFF000000u)));
}

/* Sixteen pixels per step, as two independent blocks: the hue's long chain of dependent operations
 * would otherwise leave the core waiting. */
SID_AVX2 static uint64_t jitter_pass_avx2(uint32_t *px, Py_ssize_t count, const jitter_ops *ops, int first, int last,
                                          int grey, int want_sum) {
    const __m256 vgrey = _mm256_set1_ps((float)grey);
    __m256 alpha[4];
    for (int k = 0; k < 4; k++) alpha[k] = _mm256_set1_ps(ops->alpha[k]);
    uint64_t total = 0;
    Py_ssize_t i = 0;
    while (i + 16 <= count) {
        /* Luma sums in 32-bit lanes, flushed before they could overflow. */
        __m256i sums = _mm256_setzero_si256();
        Py_ssize_t stop = i + ((Py_ssize_t)16 << 20) < count ? i + ((Py_ssize_t)16 << 20) : count;
        for (; i + 16 <= stop; i += 16) {
            __m256i p0 = _mm256_loadu_si256((const __m256i *)(px + i));
            __m256i p1 = _mm256_loadu_si256((const __m256i *)(px + i + 8));
            __m256 r0, g0, b0, r1, g1, b1;
            unpack_avx2(p0, &r0, &g0, &b0);
            unpack_avx2(p1, &r1, &g1, &b1);
            for (int k = first; k < last; k++) {
                apply_ops_avx2(&r0, &g0, &b0, ops, alpha, k, k + 1, vgrey);
                apply_ops_avx2(&r1, &g1, &b1, ops, alpha, k, k + 1, vgrey);
            }
            if (want_sum) {
                sums = _mm256_add_epi32(sums, _mm256_cvttps_epi32(luma_avx2(r0, g0, b0)));
                sums = _mm256_add_epi32(sums, _mm256_cvttps_epi32(luma_avx2(r1, g1, b1)));
            }
            if (first < last) {
                _mm256_storeu_si256((__m256i *)(px + i), pack_avx2(p0, r0, g0, b0));
                _mm256_storeu_si256((__m256i *)(px + i + 8), pack_avx2(p1, r1, g1, b1));
            }
        }
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, sums);
        for (int k = 0; k < 8; k++) total += (uint64_t)lanes[k];
    }
    return total + jitter_pass_c(px + i, count - i, ops, first, last, grey, want_sum);
}
#endif

static uint64_t jitter_pass(uint32_t *px, Py_ssize_t count, const jitter_ops *ops, int first, int last, int grey,
                           int want_sum) {
#if SID_X86
    if (use_simd) return jitter_pass_avx2(px, count, ops, first, last, grey, want_sum);
#endif
    return jitter_pass_c(px, count, ops, first, last, grey, want_sum);
}

static void jitter_run(uint32_t *px, Py_ssize_t count, const jitter_ops *ops) {
    int contrast = -1;
    for (int k = 0; k < ops->count; k++)
        if (ops->code[k] == OP_CONTRAST) contrast = k;
    if (contrast < 0 || count == 0) {
        jitter_pass(px, count, ops, 0, ops->count, 0, 0);
        return;
    }
    /* ImageEnhance.Contrast: the grey level is the rounded mean of convert("L"). */
    uint64_t total = jitter_pass(px, count, ops, 0, contrast, 0, 1);
    int grey = (int)((double)total / (double)count + 0.5);
    jitter_pass(px, count, ops, contrast, ops->count, grey, 0);
}

/* ------------------------------------------------------------------------------------------------ */
/* Python bindings                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

/* The pixel memory the kernels write to: a writable buffer, or a PIL "RGB" image's own memory, as
 * exported by Pillow (11.2 and later) through the Arrow C data interface: image.__arrow_c_array__()
 * gives (schema, array) capsules of a fixed-size list of 4 uint8 per pixel, whose child's data buffer
 * is the image's pixels, contiguous. The structures are the interface's, fixed by its specification. */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

typedef struct {
    Py_buffer view; /* when a buffer was given */
    int has_view;
    uint8_t *data;
    Py_ssize_t len;
} pixel_target;

static int arrow_pixels(PyObject *pair, pixel_target *t, const char *what) {
    PyObject *schema_capsule, *array_capsule;
    if (!PyArg_ParseTuple(pair, "OO", &schema_capsule, &array_capsule)) return -1;
    if (!PyCapsule_IsValid(schema_capsule, "arrow_schema") || !PyCapsule_IsValid(array_capsule, "arrow_array")) {
        PyErr_Format(PyExc_TypeError, "%s: expected the (schema, array) capsules of image.__arrow_c_array__()", what);
        return -1;
    }
    struct ArrowSchema *schema = PyCapsule_GetPointer(schema_capsule, "arrow_schema");
    struct ArrowArray *array = PyCapsule_GetPointer(array_capsule, "arrow_array");
    if (schema->release == NULL || array->release == NULL || strcmp(schema->format, "+w:4") != 0 ||
        schema->n_children != 1 || strcmp(schema->children[0]->format, "C") != 0 || array->n_children != 1 ||
        array->offset != 0 || array->null_count != 0 || array->children[0]->n_buffers != 2 ||
        array->children[0]->offset != 0 || array->children[0]->length != 4 * array->length ||
        array->children[0]->buffers[1] == NULL) {
        PyErr_Format(PyExc_ValueError, "%s: the Arrow array is not the pixels of a PIL RGB image", what);
        return -1;
    }
    t->data = (uint8_t *)array->children[0]->buffers[1];
    t->len = (Py_ssize_t)(4 * array->length);
    return 0;
}

/* Fill `t` from `obj`, a writable buffer or the (schema, array) capsules above; release with
 * release_pixels. */
static int get_pixels(PyObject *obj, pixel_target *t, const char *what) {
    t->has_view = 0;
    if (PyTuple_Check(obj)) return arrow_pixels(obj, t, what);
    if (PyObject_GetBuffer(obj, &t->view, PyBUF_WRITABLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: the pixels should be a writable buffer, or the Arrow pair of a PIL RGB image",
                     what);
        return -1;
    }
    t->has_view = 1;
    t->data = (uint8_t *)t->view.buf;
    t->len = t->view.len;
    return 0;
}

static void release_pixels(pixel_target *t) {
    if (t->has_view) PyBuffer_Release(&t->view);
    t->has_view = 0;
}

static int read_doubles(PyObject *seq, double *out, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd numbers", what, n);
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

PyDoc_STRVAR(warp_doc,
"warp(source, height, width, matrix, out, size, footprint=None, side=0.0)\n--\n\n"
"Bilinear warp of an RGBX `source` (height x width x 4 bytes) into `out` (size x size x 4 bytes): a\n"
"writable buffer, or the (schema, array) pair of a PIL RGB image's __arrow_c_array__(), written in place.\n"
"`matrix` holds 6 numbers, the 2x3 map from output to source pixel indices. `footprint`, 6 numbers,\n"
"maps output pixel centres to continuous coordinates in which pixels outside [0, side)^2 are 0.");

static PyObject *py_warp(PyObject *self, PyObject *args) {
    Py_buffer src;
    pixel_target dst;
    int height, width, size;
    PyObject *matrix, *out, *footprint = Py_None;
    double side = 0.0;
    if (!PyArg_ParseTuple(args, "y*iiOOi|Od:warp", &src, &height, &width, &matrix, &out, &size, &footprint, &side))
        return NULL;
    if (get_pixels(out, &dst, "warp") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    warp_job j;
    double m[6];
    if (height < 2 || width < 2 || size < 1 || (Py_ssize_t)height * width * 4 != src.len ||
        (Py_ssize_t)size * size * 4 != dst.len) {
        PyErr_SetString(PyExc_ValueError, "warp: buffer sizes do not match the given shapes");
        goto done;
    }
    if ((Py_ssize_t)height * width > INT32_MAX) {
        /* pixel offsets are 32-bit in the vector code */
        PyErr_SetString(PyExc_ValueError, "warp: the source has more than 2**31 - 1 pixels");
        goto done;
    }
    if (read_doubles(matrix, m, 6, "warp: matrix") < 0) goto done;
    for (int i = 0; i < 6; i++) j.m[i] = (float)m[i];
    j.has_footprint = footprint != Py_None;
    if (j.has_footprint && read_doubles(footprint, j.f, 6, "warp: footprint") < 0) goto done;
    j.src = (const uint32_t *)src.buf;
    j.height = height;
    j.width = width;
    j.side = side;
    j.dst = (uint32_t *)dst.data;
    j.size = size;
    Py_BEGIN_ALLOW_THREADS
#if SID_X86
    if (use_simd)
        warp_avx2(&j);
    else
#endif
        warp_c(&j);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&src);
    release_pixels(&dst);
    return result;
}

PyDoc_STRVAR(jitter_doc,
"jitter(pixels, ops)\n--\n\n"
"Apply torchvision's PIL colour jitter, in place, to RGBX `pixels` (a writable buffer, or an RGB PIL\n"
"image's (schema, array) Arrow pair, as for warp). `ops` is a sequence of at most\n"
"4 (op, value): op 0 brightness, 1 contrast, 2 saturation (value: the factor) or 3 hue (value: the\n"
"shift of PIL's hue byte, 0-255), applied in the given order; contrast at most once.");

static PyObject *py_jitter(PyObject *self, PyObject *args) {
    pixel_target buf;
    PyObject *pixels, *seq;
    if (!PyArg_ParseTuple(args, "OO:jitter", &pixels, &seq)) return NULL;
    if (get_pixels(pixels, &buf, "jitter") < 0) return NULL;
    PyObject *result = NULL, *fast = NULL;
    jitter_ops ops;
    int contrasts = 0;
    if (buf.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "jitter: the buffer should hold 4-byte pixels");
        goto done;
    }
    fast = PySequence_Fast(seq, "jitter: ops should be a sequence");
    if (fast == NULL) goto done;
    ops.count = (int)PySequence_Fast_GET_SIZE(fast);
    if (ops.count > 4) {
        PyErr_SetString(PyExc_ValueError, "jitter: at most 4 ops");
        goto done;
    }
    for (int k = 0; k < ops.count; k++) {
        double value;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, k), "id:jitter op", &ops.code[k], &value)) goto done;
        if (ops.code[k] < OP_BRIGHTNESS || ops.code[k] > OP_HUE) {
            PyErr_Format(PyExc_ValueError, "jitter: unknown op %d", ops.code[k]);
            goto done;
        }
        contrasts += ops.code[k] == OP_CONTRAST;
        ops.alpha[k] = ops.code[k] == OP_HUE ? (float)(((int)value) & 255) : (float)value;
    }
    if (contrasts > 1) {
        PyErr_SetString(PyExc_ValueError, "jitter: contrast may appear once");
        goto done;
    }
    for (int k = ops.count; k < 4; k++) {
        ops.code[k] = OP_BRIGHTNESS;
        ops.alpha[k] = 1.0f;
    }
    Py_BEGIN_ALLOW_THREADS
    jitter_run((uint32_t *)buf.data, buf.len / 4, &ops);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(fast);
    release_pixels(&buf);
    return result;
}

static int cpu_has_avx2(void) {
#if SID_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

PyDoc_STRVAR(set_simd_doc,
"set_simd(enabled)\n--\n\n"
"Use the AVX2 kernels (when the CPU has them) or the portable ones; returns whether AVX2 is used.");

static PyObject *py_set_simd(PyObject *self, PyObject *arg) {
    int enabled = PyObject_IsTrue(arg);
    if (enabled < 0) return NULL;
    use_simd = enabled && cpu_has_avx2();
    return PyBool_FromLong(use_simd);
}

PyDoc_STRVAR(simd_doc, "simd()\n--\n\nWhether the AVX2 kernels are in use.");

static PyObject *py_simd(PyObject *self, PyObject *unused) { return PyBool_FromLong(use_simd); }

static PyMethodDef methods[] = {
    {"warp", py_warp, METH_VARARGS, warp_doc},
    {"jitter", py_jitter, METH_VARARGS, jitter_doc},
    {"set_simd", py_set_simd, METH_O, set_simd_doc},
    {"simd", py_simd, METH_NOARGS, simd_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Native warp and colour-jitter kernels of the fast renderer (see render/fast.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    use_simd = cpu_has_avx2();
    return PyModule_Create(&module);
}
