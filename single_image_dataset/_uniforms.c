/*
 * The uniform stream of the sampler, natively: the same doubles as
 *
 *     numpy.random.default_rng(numpy.random.SeedSequence(entropy)).random(count)
 *
 * for a sequence of non-negative integers below 2**64, bit for bit, in a fraction of the time it takes
 * numpy to build a SeedSequence and a Generator (the larger part of drawing a sample's parameters).
 * numpy's algorithms, as documented: SeedSequence's hash mixing of 32-bit words (pool of 4 words),
 * PCG64 (128-bit LCG, XSL-RR output) seeded from four 64-bit words of the pool, and doubles made
 * from the top 53 bits of each output. tests/test_sampling.py compares it with numpy.
 *
 * Built as an optional extension: without it, sampling.py draws the same stream through numpy.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#if !defined(__SIZEOF_INT128__)
#error "a compiler with 128-bit integers is needed; without one, sampling.py uses numpy instead"
#endif

typedef unsigned __int128 u128;

/* ------------------------------------------------------------------------------------------------ */
/* SeedSequence                                                                                      */
/* ------------------------------------------------------------------------------------------------ */

#define POOL_SIZE 4
#define MAX_WORDS 16 /* 8 integers of up to 64 bits */

static const uint32_t INIT_A = 0x43b0d7e5u, MULT_A = 0x931e8875u, INIT_B = 0x8b51f9ddu, MULT_B = 0x58f38dedu,
                      MIX_MULT_L = 0xca01f9ddu, MIX_MULT_R = 0x4973f715u;
#define XSHIFT 16

static uint32_t hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= MULT_A;
    value *= *hash_const;
    return value ^ (value >> XSHIFT);
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = MIX_MULT_L * x - MIX_MULT_R * y;
    return result ^ (result >> XSHIFT);
}

/* The pool of SeedSequence(entropy) from its entropy as 32-bit words (no spawn key). */
static void mix_entropy(uint32_t pool[POOL_SIZE], const uint32_t *words, int count) {
    uint32_t hash_const = INIT_A;
    for (int i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < count ? words[i] : 0u, &hash_const);
    for (int src = 0; src < POOL_SIZE; src++)
        for (int dst = 0; dst < POOL_SIZE; dst++)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &hash_const));
    for (int src = POOL_SIZE; src < count; src++)
        for (int dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(words[src], &hash_const));
}

/* SeedSequence.generate_state(4, uint64): eight 32-bit words, paired low word first. */
static void generate_state(const uint32_t pool[POOL_SIZE], uint64_t out[4]) {
    uint32_t hash_const = INIT_B, words[8];
    for (int i = 0; i < 8; i++) {
        uint32_t value = pool[i % POOL_SIZE] ^ hash_const;
        hash_const *= MULT_B;
        value *= hash_const;
        words[i] = value ^ (value >> XSHIFT);
    }
    for (int i = 0; i < 4; i++) out[i] = (uint64_t)words[2 * i] | (uint64_t)words[2 * i + 1] << 32;
}

/* ------------------------------------------------------------------------------------------------ */
/* PCG64                                                                                             */
/* ------------------------------------------------------------------------------------------------ */

typedef struct {
    u128 state, inc;
} pcg64;

#define PCG_MULTIPLIER (((u128)2549297995355413924ULL << 64) | 4865540595714422341ULL)

static void pcg64_step(pcg64 *rng) { rng->state = rng->state * PCG_MULTIPLIER + rng->inc; }

/* numpy's PCG64(seed_sequence): initial state from words 0-1, stream from words 2-3 (high word first). */
static void pcg64_seed(pcg64 *rng, const uint64_t words[4]) {
    u128 initstate = (u128)words[0] << 64 | words[1], initseq = (u128)words[2] << 64 | words[3];
    rng->state = 0;
    rng->inc = (initseq << 1) | 1;
    pcg64_step(rng);
    rng->state += initstate;
    pcg64_step(rng);
}

static uint64_t pcg64_next(pcg64 *rng) {
    pcg64_step(rng);
    uint64_t folded = (uint64_t)(rng->state >> 64) ^ (uint64_t)rng->state;
    unsigned rot = (unsigned)(rng->state >> 122);
    return (folded >> rot) | (folded << ((64 - rot) & 63));
}

/* ------------------------------------------------------------------------------------------------ */
/* Python binding                                                                                    */
/* ------------------------------------------------------------------------------------------------ */

PyDoc_STRVAR(uniforms_doc,
"uniforms(entropy, count)\n--\n\n"
"The first `count` doubles of numpy.random.default_rng(numpy.random.SeedSequence(entropy)).random(),\n"
"as a tuple. `entropy` is a sequence of at most 8 integers in [0, 2**64); OverflowError otherwise.");

static PyObject *py_uniforms(PyObject *self, PyObject *args) {
    PyObject *entropy;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "On:uniforms", &entropy, &count)) return NULL;
    if (count < 0) {
        PyErr_SetString(PyExc_ValueError, "uniforms: count should be non-negative");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(entropy, "uniforms: entropy should be a sequence of integers");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    uint32_t words[MAX_WORDS];
    int nwords = 0;
    if (n > MAX_WORDS / 2) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_OverflowError, "uniforms: at most 8 integers");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* any integer type (numpy's too), as SeedSequence takes */
        PyObject *item = PyNumber_Index(PySequence_Fast_GET_ITEM(fast, i));
        if (item == NULL) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_TypeError, "uniforms: entropy should be a sequence of integers");
            return NULL;
        }
        /* OverflowError for negative values and values past 2**64 - 1 */
        unsigned long long value = PyLong_AsUnsignedLongLong(item);
        Py_DECREF(item);
        if (value == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return NULL;
        }
        /* numpy's words of an integer: 32 bits at a time, least significant first; 0 is one word */
        words[nwords++] = (uint32_t)value;
        if (value >> 32) words[nwords++] = (uint32_t)(value >> 32);
    }
    Py_DECREF(fast);

    uint32_t pool[POOL_SIZE];
    uint64_t state[4];
    pcg64 rng;
    mix_entropy(pool, words, nwords);
    generate_state(pool, state);
    pcg64_seed(&rng, state);

    PyObject *result = PyTuple_New(count);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyFloat_FromDouble((double)(pcg64_next(&rng) >> 11) * (1.0 / 9007199254740992.0));
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, value);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"uniforms", py_uniforms, METH_VARARGS, uniforms_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_uniforms",
    "numpy's SeedSequence + PCG64 uniform stream, natively (see sampling.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__uniforms(void) { return PyModule_Create(&module); }
