/* The resize's weighted sums (one pass's output row from its input rows), written once for any vector width:
 * resample.c includes it once per instruction set, having defined
 *   VEC(name)   the name of this instance's version of `name`;
 *   VTARGET     its target attribute;
 *   vi, VB      its integer vector type and the bytes per vector (a block of the output);
 *   V_FALLBACK  the function that takes rows shorter than one block (or more than MAX_PAIRS pairs of taps);
 *   the operations V_*, each one instruction with one meaning in every instance.
 * Every operation works within 128-bit lanes, so every instance gives the same bytes. It undefines them all at
 * its end. */

/* VB values of the output at `at` from `pairs` pairs of input rows: each pair interleaved byte by byte,
 * multiplied by its two weights and summed in one instruction (maddubs). unpacklo/unpackhi take the low and
 * high halves of each 128-bit lane, which packus puts back in order (and clamps to 0..255). */
VTARGET static inline void VEC(combine_block)(const uint8_t *const *in, const vi *w, int pairs, uint8_t *out, int at) {
    vi lo = V_SET16(WEIGHT_ONE / 2), hi = lo;
    for (int p = 0; p < pairs; p++) {
        const vi a = V_LOAD(in[2 * p] + at), b = V_LOAD(in[2 * p + 1] + at);
        lo = V_ADD16(lo, V_MADDUBS(V_UNPACKLO8(a, b), w[p]));
        hi = V_ADD16(hi, V_MADDUBS(V_UNPACKHI8(a, b), w[p]));
    }
    V_STORE(out + at, V_PACKUS16(V_SRAI16(lo, WEIGHT_BITS), V_SRAI16(hi, WEIGHT_BITS)));
}

/* A row of n >= VB values; the loop ends with one block that may overlap the previous ones, for a row whose
 * length is not a multiple of VB: a value depends on its position alone, so those computed twice are computed
 * the same. Inlined with a constant `pairs` for the common counts (COMBINE_BY_PAIRS), so that the rows'
 * pointers and weights stay in registers. */
VTARGET static inline void VEC(combine_row)(const uint8_t *const *in, const vi *w, int pairs, uint8_t *out, int n) {
    int v = 0;
    for (; v + VB <= n; v += VB) VEC(combine_block)(in, w, pairs, out, v);
    if (v < n) VEC(combine_block)(in, w, pairs, out, n - VB);
}

/* combine_c's sums (`count` taps, even), by blocks of VB values. */
VTARGET static void VEC(combine)(const uint8_t *const *in, const int8_t *c, int count, uint8_t *out, int n) {
    if (n < VB || count > 2 * MAX_PAIRS) {
        V_FALLBACK(in, c, count, out, n);
        return;
    }
    const int pairs = count / 2;
    vi w[MAX_PAIRS];
    for (int p = 0; p < pairs; p++) w[p] = V_SET16(pair_weight(c, p));
    COMBINE_BY_PAIRS(VEC(combine_row), in, w, pairs, out, n)
}

#undef VEC
#undef VTARGET
#undef vi
#undef VB
#undef V_FALLBACK
#undef V_SET16
#undef V_LOAD
#undef V_STORE
#undef V_ADD16
#undef V_MADDUBS
#undef V_UNPACKLO8
#undef V_UNPACKHI8
#undef V_SRAI16
#undef V_PACKUS16
