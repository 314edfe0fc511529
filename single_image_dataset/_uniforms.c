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

#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* The stream of SeedSequence(entropy): numpy's words of each integer (32 bits at a time, least
 * significant first; 0 is one word), mixed into the pool, expanded into PCG64's seed. */
static void seed_stream(pcg64 *rng, const uint64_t *entropy, int count) {
    uint32_t words[MAX_WORDS], pool[POOL_SIZE];
    uint64_t state[4];
    int nwords = 0;
    for (int i = 0; i < count; i++) {
        words[nwords++] = (uint32_t)entropy[i];
        if (entropy[i] >> 32) words[nwords++] = (uint32_t)(entropy[i] >> 32);
    }
    mix_entropy(pool, words, nwords);
    generate_state(pool, state);
    pcg64_seed(rng, state);
}

/* numpy's Generator.random(): the top 53 bits of an output, scaled to [0, 1). */
static double next_double(pcg64 *rng) { return (double)(pcg64_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------------------------------------ */
/* The resized crop, retried until its box fits (sampling._sample_resized_crop, operation for        */
/* operation: the same libm exp and sqrt as Python's math module, round-half-even as round())      */
/* ------------------------------------------------------------------------------------------------ */

typedef struct {
    int64_t width, height;          /* the region the box must fit in */
    double area_lo, area_hi;        /* area fraction range */
    double log_lo, log_hi;          /* log aspect-ratio range */
    int64_t max_attempts;
} box_spec;

static inline double uniform_in(double u, double lo, double hi) { return lo + (hi - lo) * u; }

static inline int64_t randint_below(double u, int64_t n) {
    int64_t v = (int64_t)(u * (double)n);
    return v < n - 1 ? v : n - 1;
}

/* Writes (top, left, height, width); returns 0, or -1 when no box fitted in max_attempts. */
static int resized_crop_box(pcg64 *rng, const box_spec *s, int64_t box[4]) {
    double area = (double)(s->width * s->height);
    for (int64_t attempt = 0; attempt < s->max_attempts; attempt++) {
        double u_area = next_double(rng), u_ratio = next_double(rng);
        double target = area * uniform_in(u_area, s->area_lo, s->area_hi);
        double aspect = exp(uniform_in(u_ratio, s->log_lo, s->log_hi));
        int64_t w = (int64_t)rint(sqrt(target * aspect));
        int64_t h = (int64_t)rint(sqrt(target / aspect));
        if (0 < w && w <= s->width && 0 < h && h <= s->height) {
            double u_top = next_double(rng), u_left = next_double(rng);
            box[0] = randint_below(u_top, s->height - h + 1);
            box[1] = randint_below(u_left, s->width - w + 1);
            box[2] = h;
            box[3] = w;
            return 0;
        }
    }
    return -1;
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
    uint64_t values[MAX_WORDS / 2];
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
        values[i] = value;
    }
    Py_DECREF(fast);

    pcg64 rng;
    seed_stream(&rng, values, (int)n);

    PyObject *result = PyTuple_New(count);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyFloat_FromDouble(next_double(&rng));
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyTuple_SET_ITEM(result, i, value);
    }
    return result;
}

PyDoc_STRVAR(sample_batch_doc,
"sample_batch(seed, epoch, indices, block, regions, area_range, log_ratio_range, max_attempts, uniforms, boxes,\n"
"             sources)\n--\n\n"
"For each index i of `indices` (a contiguous int64 buffer), the stream of SeedSequence([seed, epoch, i]):\n"
"its first `block` doubles go to row i of `uniforms` (a writable float64 buffer of len(indices) * block).\n"
"`regions` (int64, S x 2) holds the (width, height) of each source's crop region; with S > 1 the sample's\n"
"source is drawn from the block's last double, randint(u, S), and written to `sources` (a writable int64\n"
"buffer of len(indices)), else it is 0. The resized-crop box is drawn from the rest of the stream, retried\n"
"until it fits the source's region, and written to row i of `boxes` (int64, len(indices) * 4, as top, left,\n"
"height, width). RuntimeError (naming the index) when no box fits in `max_attempts` attempts.");

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize, const char *formats,
                      const char *what) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_TypeError, "sample_batch: %s should be a C-contiguous%s buffer", what,
                     writable ? " writable" : "");
        return -1;
    }
    if (view->itemsize != itemsize || view->format == NULL || strchr(formats, view->format[0]) == NULL ||
        view->format[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "sample_batch: %s has item format '%s', expected one of '%s' of %zd bytes",
                     what, view->format ? view->format : "B", formats, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *py_sample_batch(PyObject *self, PyObject *args) {
    unsigned long long seed, epoch;
    PyObject *indices_obj, *regions_obj, *uniforms_obj, *boxes_obj, *sources_obj;
    Py_ssize_t block;
    box_spec spec;
    if (!PyArg_ParseTuple(args, "KKOnO(dd)(dd)LOOO:sample_batch", &seed, &epoch, &indices_obj, &block, &regions_obj,
                          &spec.area_lo, &spec.area_hi, &spec.log_lo, &spec.log_hi, &spec.max_attempts, &uniforms_obj,
                          &boxes_obj, &sources_obj))
        return NULL;
    Py_buffer views[5];
    PyObject *objs[5] = {indices_obj, regions_obj, uniforms_obj, boxes_obj, sources_obj};
    const char *names[5] = {"indices", "regions", "uniforms", "boxes", "sources"};
    const char *formats[5] = {"qlQL", "qlQL", "d", "qlQL", "qlQL"};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 5; got++)
        if (get_buffer(objs[got], &views[got], got >= 2, 8, formats[got], names[got]) < 0) goto done;
    Py_ssize_t n = views[0].len / 8, num_sources = views[1].len / 16;
    if (block < 1 || num_sources < 1 || views[1].len != num_sources * 16 || views[2].len != n * block * 8 ||
        views[3].len != n * 4 * 8 || views[4].len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "sample_batch: block should be positive, regions S x 2, and uniforms, boxes "
                                          "and sources should have len(indices) * block, * 4 and * 1 items");
        goto done;
    }
    const int64_t *index = (const int64_t *)views[0].buf, *region = (const int64_t *)views[1].buf;
    for (Py_ssize_t s = 0; s < 2 * num_sources; s++)
        if (region[s] < 1) {
            PyErr_SetString(PyExc_ValueError, "sample_batch: every region should be at least 1x1");
            goto done;
        }
    double *u = (double *)views[2].buf;
    int64_t *box = (int64_t *)views[3].buf, *source = (int64_t *)views[4].buf;
    Py_ssize_t failed = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < n; k++) {
        uint64_t entropy[3] = {seed, epoch, (uint64_t)index[k]};
        pcg64 rng;
        seed_stream(&rng, entropy, 3);
        double *row = u + k * block;
        for (Py_ssize_t j = 0; j < block; j++) row[j] = next_double(&rng);
        source[k] = num_sources > 1 ? randint_below(row[block - 1], num_sources) : 0;
        spec.width = region[2 * source[k]];
        spec.height = region[2 * source[k] + 1];
        if (resized_crop_box(&rng, &spec, box + 4 * k) < 0) {
            failed = k;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed >= 0) {
        PyErr_Format(PyExc_RuntimeError, "no resized-crop box fitted a %lldx%lld region in %lld attempts for index %lld",
                     (long long)spec.width, (long long)spec.height, (long long)spec.max_attempts,
                     (long long)index[failed]);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"uniforms", py_uniforms, METH_VARARGS, uniforms_doc},
    {"sample_batch", py_sample_batch, METH_VARARGS, sample_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_uniforms",
    "numpy's SeedSequence + PCG64 uniform stream, natively (see sampling.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__uniforms(void) { return PyModule_Create(&module); }
