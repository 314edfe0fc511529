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
/* The vector code (jitter_vector.h) for AVX2, 8 pixels per vector, and AVX-512, 16; the header undefines
 * the names each instance defines. */
#define VEC(name) name##_avx2
#define VTARGET SID_AVX2
#define VN 8
#define vf __m256
#define vi __m256i
#define V_SET_F _mm256_set1_ps
#define V_ZERO_F _mm256_setzero_ps
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_MIN _mm256_min_ps
#define V_MAX _mm256_max_ps
#define V_TRUNC(v) _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_LUMA sid_luma_avx2
#define V_EQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define V_SELECT(m, a, b) _mm256_blendv_ps(a, b, m)
#define V_SET_I _mm256_set1_epi32
#define V_ZERO_I _mm256_setzero_si256
#define V_AND _mm256_and_si256
#define V_OR _mm256_or_si256
#define V_SRLI _mm256_srli_epi32
#define V_SLLI _mm256_slli_epi32
#define V_ADD_I _mm256_add_epi32
#define V_I2F _mm256_cvtepi32_ps
#define V_F2I _mm256_cvttps_epi32
#define V_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), v)
#include "jitter_vector.h"

#define VEC(name) name##_avx512
#define VTARGET SID_AVX512
#define VN 16
#define vf __m512
#define vi __m512i
#define V_SET_F _mm512_set1_ps
#define V_ZERO_F _mm512_setzero_ps
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_DIV _mm512_div_ps
#define V_MIN _mm512_min_ps
#define V_MAX _mm512_max_ps
#define V_TRUNC(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_LUMA sid_luma_avx512
#define V_EQ(a, b) _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ)
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define V_SELECT(m, a, b) _mm512_mask_blend_ps(m, a, b)
#define V_SET_I _mm512_set1_epi32
#define V_ZERO_I _mm512_setzero_si512
#define V_AND _mm512_and_si512
#define V_OR _mm512_or_si512
#define V_SRLI _mm512_srli_epi32
#define V_SLLI _mm512_slli_epi32
#define V_ADD_I _mm512_add_epi32
#define V_I2F _mm512_cvtepi32_ps
#define V_F2I _mm512_cvttps_epi32
#define V_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define V_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#include "jitter_vector.h"
#endif

static uint64_t jitter_pass(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int first, int last, int grey,
                           int want_sum, int simd) {
#if SID_X86
    if (simd >= SID_VECTOR_AVX512) return jitter_pass_avx512(px, count, ops, first, last, grey, want_sum);
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
