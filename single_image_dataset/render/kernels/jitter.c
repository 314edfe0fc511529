/* The colour-jitter kernels: portable and AVX2 (see kernels.h). */

#include <math.h>

#include "kernels.h"

#if SID_X86
#include <immintrin.h>
#endif

/* PIL's ImagingBlend(grey, image, alpha) for one channel: grey + alpha (value - grey) in single
 * precision, then 0 at or below 0, 255 at or above 255, truncated in between. */
static inline int blend8(int grey, int value, float alpha) {
    float t = (float)grey + alpha * (float)(value - grey);
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (int)t;
}

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
static uint64_t jitter_pass_c(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int first, int last, int grey,
                              int want_sum) {
    uint64_t total = 0;
    for (ptrdiff_t i = 0; i < count; i++) {
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
                    int l = sid_luma(r, g, b);
                    r = blend8(l, r, a); g = blend8(l, g, a); b = blend8(l, b, a);
                    break;
                }
                default:
                    hue_pixel(&r, &g, &b, a);
                    break;
            }
        }
        if (want_sum) total += (uint64_t)sid_luma(r, g, b);
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
                __m256 l = sid_luma_avx2(*r, *g, *b);
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
SID_AVX2 static uint64_t jitter_pass_avx2(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int first, int last,
                                          int grey, int want_sum) {
    const __m256 vgrey = _mm256_set1_ps((float)grey);
    __m256 alpha[4];
    for (int k = 0; k < 4; k++) alpha[k] = _mm256_set1_ps(ops->alpha[k]);
    uint64_t total = 0;
    ptrdiff_t i = 0;
    while (i + 16 <= count) {
        /* Luma sums in 32-bit lanes, flushed before they could overflow. */
        __m256i sums = _mm256_setzero_si256();
        ptrdiff_t stop = i + ((ptrdiff_t)16 << 20) < count ? i + ((ptrdiff_t)16 << 20) : count;
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
                sums = _mm256_add_epi32(sums, _mm256_cvttps_epi32(sid_luma_avx2(r0, g0, b0)));
                sums = _mm256_add_epi32(sums, _mm256_cvttps_epi32(sid_luma_avx2(r1, g1, b1)));
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
    _mm256_zeroupper(); /* the portable code that follows runs at full speed with clean vector registers */
    return total + jitter_pass_c(px + i, count - i, ops, first, last, grey, want_sum);
}
#endif

static uint64_t jitter_pass(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int first, int last, int grey,
                           int want_sum, int simd) {
#if SID_X86
    if (simd) return jitter_pass_avx2(px, count, ops, first, last, grey, want_sum);
#endif
    return jitter_pass_c(px, count, ops, first, last, grey, want_sum);
}

void sid_jitter(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int simd) {
    int contrast = -1;
    for (int k = 0; k < ops->count; k++)
        if (ops->code[k] == OP_CONTRAST) contrast = k;
    if (contrast < 0 || count == 0) {
        jitter_pass(px, count, ops, 0, ops->count, 0, 0, simd);
        return;
    }
    /* ImageEnhance.Contrast: the grey level is the rounded mean of convert("L"). */
    uint64_t total = jitter_pass(px, count, ops, 0, contrast, 0, 1, simd);
    int grey = (int)((double)total / (double)count + 0.5);
    jitter_pass(px, count, ops, contrast, ops->count, grey, 0, simd);
}
