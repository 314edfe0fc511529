/* The colour jitter's vector code, written once for any vector width: jitter.c includes it once per
 * instruction set, having defined
 *   VEC(name)   the name of this instance's version of `name`;
 *   VTARGET     its target attribute;
 *   vf, vi      its float and integer vector types, and VN, the pixels per vector;
 *   V_LUMA      kernels.h's sid_luma at that width;
 *   the operations V_*, each one instruction with one meaning in every instance (V_SELECT(m, a, b):
 *               m ? b : a, m a comparison's result).
 * It undefines them all at its end.
 * Channels are floats holding integers; the same operations in the same order as the portable code,
 * with selects for its branches, so every instance gives the portable code's bytes. */

VTARGET static inline vf VEC(clip_trunc)(vf t) {
    return V_MIN(V_MAX(V_TRUNC(t), V_ZERO_F()), V_SET_F(255.0f));
}

VTARGET static inline vf VEC(blend8)(vf grey, vf value, vf alpha) {
    return VEC(clip_trunc)(V_ADD(grey, V_MUL(alpha, V_SUB(value, grey))));
}

/* hue_pixel; V_SELECT(m, a, b) is m ? b : a. */
VTARGET static inline void VEC(hue)(vf *pr, vf *pg, vf *pb, vf shift) {
    const vf f1 = V_SET_F(1.0f), f6 = V_SET_F(6.0f), f256 = V_SET_F(256.0f), zero = V_ZERO_F();
    vf r = *pr, g = *pg, b = *pb;
    vf v = V_MAX(V_MAX(r, g), b), m = V_MIN(V_MIN(r, g), b);
    vf c = V_SUB(v, m);
    vf x = V_SUB(V_ADD(V_MUL(V_SET_F(4.0f), c), r), g);
    x = V_SELECT(V_EQ(g, v), x, V_SUB(V_ADD(V_MUL(V_SET_F(2.0f), c), b), r));
    x = V_SELECT(V_EQ(r, v), x, V_SUB(g, b));
    x = V_SELECT(V_LT(x, zero), x, V_ADD(x, V_MUL(f6, c)));
    vf hue = V_MUL(x, V_DIV(f1, V_MAX(c, f1)));
    hue = V_ADD(V_TRUNC(V_MUL(hue, V_SET_F(HUE_BYTES_PER_SEXTANT))), shift);
    hue = V_SELECT(V_GE(hue, f256), hue, V_SUB(hue, f256));
    vf cs = V_DIV(c, V_MAX(v, f1));
    cs = V_MUL(v, V_MUL(V_TRUNC(V_MUL(cs, V_SET_F(255.0f))), V_SET_F(INV_255)));
    x = V_MUL(V_MUL(hue, V_SET_F(SEXTANTS_PER_HUE_BYTE)), cs);
    vf c6 = V_MUL(f6, cs), c4 = V_MUL(V_SET_F(4.0f), cs);
    vf vhalf = V_ADD(v, V_SET_F(0.5f));
    vf *outs[3] = {pr, pg, pb};
    for (int i = 0; i < 3; i++) {
        vf k = V_ADD(V_MUL(V_SET_F((float)(5 - 2 * i)), cs), x);
        k = V_SELECT(V_GE(k, c6), k, V_SUB(k, c6));
        /* V_MIN(a, b) is a < b ? a : b and V_MAX(a, b) is a > b ? a : b, as in hue_pixel. */
        vf w = V_MIN(k, V_SUB(c4, k));
        w = V_MAX(V_MIN(w, cs), zero);
        *outs[i] = V_TRUNC(V_SUB(vhalf, w));
    }
}

/* Op k of `ops` on the channels of VN pixels. */
VTARGET static inline void VEC(apply_op)(vf *r, vf *g, vf *b, const jitter_ops *ops, const vf *alpha, int k, vf grey) {
    const vf f255 = V_SET_F(255.0f);
    switch (ops->code[k]) {
        case OP_BRIGHTNESS: /* blend8 with grey 0: alpha v >= 0, so only the top clips */
            *r = V_MIN(V_TRUNC(V_MUL(alpha[k], *r)), f255);
            *g = V_MIN(V_TRUNC(V_MUL(alpha[k], *g)), f255);
            *b = V_MIN(V_TRUNC(V_MUL(alpha[k], *b)), f255);
            break;
        case OP_CONTRAST:
            *r = VEC(blend8)(grey, *r, alpha[k]);
            *g = VEC(blend8)(grey, *g, alpha[k]);
            *b = VEC(blend8)(grey, *b, alpha[k]);
            break;
        case OP_SATURATION: {
            vf l = V_LUMA(*r, *g, *b);
            *r = VEC(blend8)(l, *r, alpha[k]);
            *g = VEC(blend8)(l, *g, alpha[k]);
            *b = VEC(blend8)(l, *b, alpha[k]);
            break;
        }
        default:
            VEC(hue)(r, g, b, alpha[k]);
            break;
    }
}

VTARGET static inline void VEC(unpack)(vi p, vf *r, vf *g, vf *b) {
    const vi m255 = V_SET_I(255);
    *r = V_I2F(V_AND(p, m255));
    *g = V_I2F(V_AND(V_SRLI(p, 8), m255));
    *b = V_I2F(V_AND(V_SRLI(p, 16), m255));
}

VTARGET static inline vi VEC(pack)(vi p, vf r, vf g, vf b) {
    vi out = V_OR(V_F2I(r), V_SLLI(V_F2I(g), 8));
    out = V_OR(out, V_SLLI(V_F2I(b), 16));
    return V_OR(out, V_AND(p, V_SET_I((int)0xFF000000u)));
}

/* jitter_pass_c on 2 VN pixels per step, as two independent blocks (the hue's long chain of dependent
 * operations would otherwise leave the core waiting); the rest, fewer than 2 VN, by the portable code. */
VTARGET static uint64_t VEC(jitter_pass)(uint32_t *px, ptrdiff_t count, const jitter_ops *ops, int first, int last,
                                        int grey, int want_sum) {
    const vf vgrey = V_SET_F((float)grey);
    vf alpha[4];
    for (int k = 0; k < 4; k++) alpha[k] = V_SET_F(ops->alpha[k]);
    uint64_t total = 0;
    ptrdiff_t i = 0;
    while (i + 2 * VN <= count) {
        /* Luma sums in 32-bit lanes, flushed before they could overflow. */
        vi sums = V_ZERO_I();
        ptrdiff_t stop = i + ((ptrdiff_t)16 << 20) < count ? i + ((ptrdiff_t)16 << 20) : count;
        for (; i + 2 * VN <= stop; i += 2 * VN) {
            vi p0 = V_LOAD(px + i), p1 = V_LOAD(px + i + VN);
            vf r0, g0, b0, r1, g1, b1;
            VEC(unpack)(p0, &r0, &g0, &b0);
            VEC(unpack)(p1, &r1, &g1, &b1);
            for (int k = first; k < last; k++) {
                VEC(apply_op)(&r0, &g0, &b0, ops, alpha, k, vgrey);
                VEC(apply_op)(&r1, &g1, &b1, ops, alpha, k, vgrey);
            }
            if (want_sum) {
                sums = V_ADD_I(sums, V_F2I(V_LUMA(r0, g0, b0)));
                sums = V_ADD_I(sums, V_F2I(V_LUMA(r1, g1, b1)));
            }
            if (first < last) {
                V_STORE(px + i, VEC(pack)(p0, r0, g0, b0));
                V_STORE(px + i + VN, VEC(pack)(p1, r1, g1, b1));
            }
        }
        int32_t lanes[VN];
        V_STORE(lanes, sums);
        for (int k = 0; k < VN; k++) total += (uint64_t)lanes[k];
    }
    _mm256_zeroupper(); /* the portable code that follows runs at full speed with clean vector registers */
    return total + jitter_pass_c(px + i, count - i, ops, first, last, grey, want_sum);
}

#undef VEC
#undef VTARGET
#undef VN
#undef vf
#undef vi
#undef V_SET_F
#undef V_ZERO_F
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_MIN
#undef V_MAX
#undef V_TRUNC
#undef V_LUMA
#undef V_EQ
#undef V_LT
#undef V_GE
#undef V_SELECT
#undef V_SET_I
#undef V_ZERO_I
#undef V_AND
#undef V_OR
#undef V_SRLI
#undef V_SLLI
#undef V_ADD_I
#undef V_I2F
#undef V_F2I
#undef V_LOAD
#undef V_STORE
