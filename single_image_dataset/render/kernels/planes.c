/*
 * RGBX pixels to the three planes of a CHW image (kernels.h).
 */

#include "kernels.h"

#if SID_X86
#include <immintrin.h>
#endif

static void to_planes_c(const uint32_t *px, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b) {
    for (ptrdiff_t i = 0; i < count; i++) {
        uint32_t v = px[i];
        r[i] = (uint8_t)v;
        g[i] = (uint8_t)(v >> 8);
        b[i] = (uint8_t)(v >> 16);
    }
}

#if SID_X86
/* 32 pixels at a time: bytes gathered per channel within each 128-bit lane, then lanes reordered. */
SID_AVX2 static void to_planes_avx2(const uint32_t *px, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b) {
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    ptrdiff_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256i v[4];
        for (int q = 0; q < 4; q++) {
            /* the shuffle makes each lane R R R R G G G G B B B B X X X X (4 pixels); the permutation
             * then gives 64-bit groups R x8 | G x8 | B x8 | X x8 (8 pixels) */
            v[q] = _mm256_permutevar8x32_epi32(
                _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(px + i + 8 * q)), gather), lanes);
        }
        /* 64-bit groups: lo = R R | B B and hi = G G | X X (per 128-bit lane), then whole lanes */
        __m256i lo01 = _mm256_unpacklo_epi64(v[0], v[1]), lo23 = _mm256_unpacklo_epi64(v[2], v[3]);
        __m256i hi01 = _mm256_unpackhi_epi64(v[0], v[1]), hi23 = _mm256_unpackhi_epi64(v[2], v[3]);
        __m256i rr = _mm256_permute2x128_si256(lo01, lo23, 0x20), bb = _mm256_permute2x128_si256(lo01, lo23, 0x31);
        __m256i gg = _mm256_permute2x128_si256(hi01, hi23, 0x20);
        _mm256_storeu_si256((__m256i *)(r + i), rr);
        _mm256_storeu_si256((__m256i *)(g + i), gg);
        _mm256_storeu_si256((__m256i *)(b + i), bb);
    }
    to_planes_c(px + i, count - i, r + i, g + i, b + i);
}
#endif

void sid_to_planes(const uint32_t *px, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b, int simd) {
#if SID_X86
    if (simd) {
        to_planes_avx2(px, count, r, g, b);
        return;
    }
#else
    (void)simd;
#endif
    to_planes_c(px, count, r, g, b);
}
