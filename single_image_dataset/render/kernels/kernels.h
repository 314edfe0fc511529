/*
 * The native kernels of the fast renderer, pure C with no Python API: a sample's geometry as the
 * reference's two resamplings (resample.c: PIL's antialiased resize onto the resized crop's grid, only
 * where the warp reads it, then warp.c: the bilinear warp with the reference's black fill), and PIL's
 * colour-jitter arithmetic (jitter.c), all on RGBX pixels (4 bytes, the layout of a PIL "RGB" image).
 * render/_kernels.c binds them to Python.
 *
 * Every kernel has a portable C version and, on x86-64 CPUs with AVX2, a vectorised one, chosen by the
 * caller's `simd` level (at most sid_cpu_simd()). They give the same bytes: the vector
 * code does the same single-precision operations in the same order (the build turns off FMA
 * contraction), so a sample does not depend on the CPU. An AVX2 function that calls portable code
 * clears the vector registers' upper halves first (_mm256_zeroupper): compilers do not always do it
 * there, and on Intel CPUs every SSE instruction after dirty upper halves is slowed.
 */

#ifndef SID_KERNELS_H
#define SID_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define SID_X86 1
#define SID_AVX2 __attribute__((target("avx2,fma")))
#define SID_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw")))
/* The same for loops the compiler vectorises: at AVX-512's full width, which GCC may otherwise pass over for
 * 256 bits (clang has no such target option). */
#if defined(__clang__)
#define SID_AVX512_LOOPS SID_AVX512
#else
#define SID_AVX512_LOOPS __attribute__((target("avx2,fma,avx512f,avx512bw,prefer-vector-width=512")))
#endif
#else
#define SID_X86 0
#endif

/* The kernels' `simd` argument: the widest vector code to run. The jitter and the resize (its sums, taps and
 * spans) have AVX-512 versions (twice the AVX2 width, the same operations); the other kernels run their AVX2
 * code there. */
enum { SID_PORTABLE = 0, SID_VECTOR_AVX2 = 1, SID_VECTOR_AVX512 = 2 };

/* PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded (the jitter's and the views' grayscale). */
static inline int sid_luma(int r, int g, int b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

#if SID_X86
#include <immintrin.h>
/* sid_luma of eight pixels in single precision, exactly: every partial sum is an integer below 2^24. */
SID_AVX2 static inline __m256 sid_luma_avx2(__m256 r, __m256 g, __m256 b) {
    __m256 t = _mm256_add_ps(_mm256_mul_ps(r, _mm256_set1_ps(19595.0f)), _mm256_mul_ps(g, _mm256_set1_ps(38470.0f)));
    t = _mm256_add_ps(_mm256_add_ps(t, _mm256_mul_ps(b, _mm256_set1_ps(7471.0f))), _mm256_set1_ps(32768.0f));
    return _mm256_floor_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.0f / 65536.0f)));
}

/* The same, sixteen pixels. */
SID_AVX512 static inline __m512 sid_luma_avx512(__m512 r, __m512 g, __m512 b) {
    __m512 t = _mm512_add_ps(_mm512_mul_ps(r, _mm512_set1_ps(19595.0f)), _mm512_mul_ps(g, _mm512_set1_ps(38470.0f)));
    t = _mm512_add_ps(_mm512_add_ps(t, _mm512_mul_ps(b, _mm512_set1_ps(7471.0f))), _mm512_set1_ps(32768.0f));
    return _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.0f / 65536.0f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Warp (warp.c)                                                                                     */
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

/* Warp job->src into job->dst. */
void sid_warp(const warp_job *job, int simd);

/* ------------------------------------------------------------------------------------------------ */
/* A sample's geometry (resample.c)                                                                  */
/* ------------------------------------------------------------------------------------------------ */

/* The reference resizes the crop box to side x side with PIL's antialiased filter (torchvision's
 * resized_crop), then warps that grid bilinearly (affine or rotate, vertical flip, centre crop: the
 * map to_resized from output pixel centres to the grid's continuous coordinates) and fills with 0 the
 * pixels whose centre maps outside [0, side)^2. sid_render does the same, but resizes only the grid
 * points that the warp reads (around the image of the output square, rounded outwards): PIL's
 * coefficients, in 6-bit fixed point, cut at the box rounded outwards to whole pixels, one pass down
 * the columns, then one along the rows (each rounded to bytes, as PIL's), then warp.c's warp. The
 * source may be a level of a pyramid, the box given in its pixels; the vector code is fastest for
 * reductions below 3.5 (the pyramid keeps them below 2) and runs larger ones with the portable code. */

enum { SID_BILINEAR = 0, SID_BICUBIC = 1, SID_LANCZOS = 2 };

typedef struct {
    const uint32_t *src;
    int height, width;
    double box[4];        /* left, top, right, bottom, in src pixels; inside the source */
    int filter;           /* SID_BILINEAR, SID_BICUBIC or SID_LANCZOS */
    int side;             /* the resized crop's side */
    double to_resized[6]; /* output pixel centres to the resized crop (continuous coordinates) */
    uint32_t *dst;
    int size;
} render_job;

/* Scratch memory that sid_render grows as it needs: start from {0}, release with sid_workspace_free. */
typedef struct {
    void *mem;
    size_t capacity;
} sid_workspace;

/* Render job->dst; 0 on success, -1 where scratch memory could not be allocated. */
int sid_render(const render_job *job, sid_workspace *ws, int simd);
/* At least n bytes of scratch in ws->mem (its contents not kept); 0 on success, -1 out of memory. */
int sid_workspace_reserve(sid_workspace *ws, size_t n);
void sid_workspace_free(sid_workspace *ws);
/* n rounded up to a multiple of 32 bytes: the alignment of each part of the scratch. */
static inline size_t sid_align32(size_t n) { return (n + 31) & ~(size_t)31; }

/* ------------------------------------------------------------------------------------------------ */
/* Colour jitter (jitter.c): torchvision's adjust_* on a PIL image, i.e. PIL's ImageEnhance and HSV   */
/* arithmetic                                                                                        */
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

/* Apply `ops`, in order and in place, to `count` pixels. */
void sid_jitter(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int simd);

/* ------------------------------------------------------------------------------------------------ */
/* Pixel layouts (planes.c)                                                                                 */
/* ------------------------------------------------------------------------------------------------ */

/* Split `count` RGBX pixels into the planes r, g and b (a CHW image's three channels). */
void sid_to_planes(const uint32_t *px, ptrdiff_t count, uint8_t *r, uint8_t *g, uint8_t *b, int simd);

/* dst (cols x rows, rows dst_stride pixels apart) is src (rows x cols, rows src_stride apart) transposed; with
 * `span` (NULL: every column), only where it is needed: of each 8 rows (i = 8 k .. 8 k + 7), the columns from the
 * least span[2 i] to the greatest span[2 i + 1] of those whose span is not empty (elsewhere dst is left as it was). */
void sid_transpose(const uint32_t *src, ptrdiff_t src_stride, int rows, int cols, uint32_t *dst, ptrdiff_t dst_stride,
                   const int *span, int simd);

/* ------------------------------------------------------------------------------------------------ */
/* Views (views.c): a view of a rendered sample, as torchvision's functional ops on a PIL image      */
/* ------------------------------------------------------------------------------------------------ */

/* The crop (top, left, height, width) of the RGBX sample (side x side) resized to size x size with PIL's
 * antialiased bilinear filter, exactly as Image.resize computes it (22-bit weights, along the rows then down
 * the columns, or down the columns first if `vertical_first`, each pass rounded to bytes), flipped
 * horizontally if `hflip` (in the pass along the rows), then, each
 * where asked: the jitter's ops (sid_jitter), PIL's convert("L") to three channels, the split into the
 * planes, torchvision's Gaussian blur with the symmetric float32 kernel `blur` of `blur_taps` taps (odd,
 * below 2 size; 0 or 1 for none) on each plane (within a level of torchvision's float sums: see views.c),
 * and PIL's solarization at 128. All but the blur and the jitter's hue give PIL's bytes. */
typedef struct {
    const uint32_t *sample;
    int side;
    int top, left, height, width; /* inside the sample, height and width at least 1 */
    int size;
    int vertical_first, hflip, grayscale, solarize;
    jitter_ops jitter; /* count 0: no jitter */
    const float *blur;
    int blur_taps;
    uint8_t *planes[3];
} view_job;

/* Write the view's planes; 0 on success, -1 where scratch memory could not be allocated. */
int sid_view(const view_job *job, sid_workspace *ws, int simd);

/* The widest vector code this CPU (and its operating system) runs: SID_VECTOR_AVX512, SID_VECTOR_AVX2 or SID_PORTABLE. */
static inline int sid_cpu_simd(void) {
#if SID_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return SID_PORTABLE;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? SID_VECTOR_AVX512
                                                                                    : SID_VECTOR_AVX2;
#else
    return SID_PORTABLE;
#endif
}

#endif
