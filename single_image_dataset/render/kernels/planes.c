/*
 * Pixel layouts (kernels.h): RGBX pixels to the three planes of a CHW image, and a transpose.
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

/* dst[j * dst_stride + i] = src[i * src_stride + j] for rows i of [r0, r1) and columns j of [c0, c1). */
static void transpose_c(const uint32_t *src, ptrdiff_t src_stride, int r0, int r1, int c0, int c1, uint32_t *dst,
                        ptrdiff_t dst_stride) {
    for (int i = r0; i < r1; i++)
        for (int j = c0; j < c1; j++) dst[j * dst_stride + i] = src[i * src_stride + j];
}

/* The columns [*c0, *c1) that rows [r0, r1) need transposed: all of them, or the union of their spans. */
static void block_columns(const int *span, int cols, int r0, int r1, int *c0, int *c1) {
    if (span == NULL) {
        *c0 = 0;
        *c1 = cols;
        return;
    }
    *c0 = cols;
    *c1 = 0;
    for (int i = r0; i < r1; i++) {
        if (span[2 * i] >= span[2 * i + 1]) continue;
        *c0 = span[2 * i] < *c0 ? span[2 * i] : *c0;
        *c1 = span[2 * i + 1] > *c1 ? span[2 * i + 1] : *c1;
    }
}

#if SID_X86
/* 8 x 8 pixels in registers: rows i .. i + 7 and columns j .. j + 7. */
SID_AVX2 static inline void transpose8(const uint32_t *src, ptrdiff_t src_stride, int i, int j, uint32_t *dst,
                                       ptrdiff_t dst_stride) {
    __m256i v[8], t[8];
    for (int k = 0; k < 8; k++) v[k] = _mm256_loadu_si256((const __m256i *)(src + (i + k) * src_stride + j));
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
    /* v[k] and v[k + 4] hold, per 128-bit lane, four rows of columns j + k and j + k + 4 */
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_si256((__m256i *)(dst + (j + k) * dst_stride + i), _mm256_permute2x128_si256(v[k], v[k + 4], 0x20));
        _mm256_storeu_si256((__m256i *)(dst + (j + k + 4) * dst_stride + i),
                            _mm256_permute2x128_si256(v[k], v[k + 4], 0x31));
    }
}

/* Blocks of 8 rows in 8 x 8 blocks, the last of a block's columns overlapping the one before (a value moved
 * twice is moved the same); narrow blocks and the last rows as transpose_c. */
SID_AVX2 static void transpose_avx2(const uint32_t *src, ptrdiff_t src_stride, int rows, int cols, uint32_t *dst,
                                    ptrdiff_t dst_stride, const int *span) {
    const int r8 = rows & ~7;
    for (int i = 0; i < r8; i += 8) {
        int c0, c1;
        block_columns(span, cols, i, i + 8, &c0, &c1);
        if (c1 - c0 < 8) {
            transpose_c(src, src_stride, i, i + 8, c0, c1, dst, dst_stride);
            continue;
        }
        for (int j = c0; j < c1; j += 8) transpose8(src, src_stride, i, j + 8 <= c1 ? j : c1 - 8, dst, dst_stride);
    }
    int c0, c1;
    block_columns(span, cols, r8, rows, &c0, &c1);
    transpose_c(src, src_stride, r8, rows, c0, c1, dst, dst_stride);
}
#endif

void sid_transpose(const uint32_t *src, ptrdiff_t src_stride, int rows, int cols, uint32_t *dst, ptrdiff_t dst_stride,
                   const int *span, int simd) {
#if SID_X86
    if (simd) {
        transpose_avx2(src, src_stride, rows, cols, dst, dst_stride, span);
        return;
    }
#else
    (void)simd;
#endif
    for (int i = 0; i < rows; i += 8) {
        int c0, c1;
        block_columns(span, cols, i, i + 8 < rows ? i + 8 : rows, &c0, &c1);
        transpose_c(src, src_stride, i, i + 8 < rows ? i + 8 : rows, c0, c1, dst, dst_stride);
    }
}
