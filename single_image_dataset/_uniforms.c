/*
 * The Python bindings of the sampler's native uniform stream (uniforms/): argument parsing and buffer
 * checks around the pure C stream and batch loop.
 *
 * Built as an optional extension: without it, sampling.py draws the same stream through numpy.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "_buffers.h"
#include "uniforms.h"

PyDoc_STRVAR(uniforms_doc,
"uniforms(entropy, count)\n--\n\n"
"The first `count` doubles of numpy.random.default_rng(numpy.random.SeedSequence(entropy)).random(),\n"
"as a tuple. `entropy` is a sequence of at most 8 integers in [0, 2**64); OverflowError otherwise.");

/* The integers of `seq` (any integer type, numpy's too, as SeedSequence takes) into `values`, at most `max`
 * of them; returns how many, or -1 with TypeError (not integers) or OverflowError (more than `max`, a
 * negative value or one past 2**64 - 1) set, naming `func` and `what`. */
static int parse_entropy(PyObject *seq, uint64_t *values, int max, const char *func, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "entropy should be a sequence of integers");
    if (fast == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: %s should be a sequence of integers", func, what);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_OverflowError, "%s: at most %d integers in %s", func, max, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyNumber_Index(PySequence_Fast_GET_ITEM(fast, i));
        if (item == NULL) {
            Py_DECREF(fast);
            PyErr_Format(PyExc_TypeError, "%s: %s should be a sequence of integers", func, what);
            return -1;
        }
        /* OverflowError for negative values and values past 2**64 - 1 */
        unsigned long long value = PyLong_AsUnsignedLongLong(item);
        Py_DECREF(item);
        if (value == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        values[i] = value;
    }
    Py_DECREF(fast);
    return (int)n;
}

static PyObject *py_uniforms(PyObject *self, PyObject *args) {
    PyObject *entropy;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "On:uniforms", &entropy, &count)) return NULL;
    if (count < 0) {
        PyErr_SetString(PyExc_ValueError, "uniforms: count should be non-negative");
        return NULL;
    }
    uint64_t values[SID_MAX_ENTROPY];
    int n = parse_entropy(entropy, values, SID_MAX_ENTROPY, "uniforms", "entropy");
    if (n < 0) return NULL;

    sid_pcg64 rng;
    sid_seed_stream(&rng, values, n);

    PyObject *result = PyTuple_New(count);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyFloat_FromDouble(sid_next_double(&rng));
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

#define INT64_FORMATS "qlQL"

static PyObject *py_sample_batch(PyObject *self, PyObject *args) {
    PyObject *indices_obj, *regions_obj, *uniforms_obj, *boxes_obj, *sources_obj;
    sid_batch b;
    unsigned long long seed, epoch;
    Py_ssize_t block;
    long long max_attempts;
    if (!PyArg_ParseTuple(args, "KKOnO(dd)(dd)LOOO:sample_batch", &seed, &epoch, &indices_obj, &block, &regions_obj,
                          &b.area_lo, &b.area_hi, &b.log_lo, &b.log_hi, &max_attempts, &uniforms_obj, &boxes_obj,
                          &sources_obj))
        return NULL;
    if (block < 1) {
        PyErr_SetString(PyExc_ValueError, "sample_batch: block should be positive");
        return NULL;
    }
    Py_buffer indices, regions, uniforms, boxes, sources;
    int got = 0; /* how many of the five buffers are held */
    PyObject *result = NULL;
    if (sid_get_buffer(indices_obj, &indices, 0, INT64_FORMATS, 8, -1, "sample_batch", "indices") < 0) goto done;
    got++;
    Py_ssize_t n = indices.len / 8;
    if (sid_get_buffer(regions_obj, &regions, 0, INT64_FORMATS, 8, -1, "sample_batch", "regions") < 0) goto done;
    got++;
    if (sid_get_buffer(uniforms_obj, &uniforms, 1, "d", 8, n * block, "sample_batch", "uniforms") < 0) goto done;
    got++;
    if (sid_get_buffer(boxes_obj, &boxes, 1, INT64_FORMATS, 8, 4 * n, "sample_batch", "boxes") < 0) goto done;
    got++;
    if (sid_get_buffer(sources_obj, &sources, 1, INT64_FORMATS, 8, n, "sample_batch", "sources") < 0) goto done;
    got++;
    Py_ssize_t num_sources = regions.len / 16;
    const int64_t *region = (const int64_t *)regions.buf;
    if (num_sources < 1 || regions.len != num_sources * 16) {
        PyErr_SetString(PyExc_ValueError, "sample_batch: regions should be S x 2 with S >= 1");
        goto done;
    }
    for (Py_ssize_t s = 0; s < 2 * num_sources; s++)
        if (region[s] < 1) {
            PyErr_SetString(PyExc_ValueError, "sample_batch: every region should be at least 1x1");
            goto done;
        }
    b.seed = seed;
    b.epoch = epoch;
    b.indices = (const int64_t *)indices.buf;
    b.count = n;
    b.block = block;
    b.regions = region;
    b.num_sources = num_sources;
    b.max_attempts = max_attempts;
    b.uniforms = (double *)uniforms.buf;
    b.boxes = (int64_t *)boxes.buf;
    b.sources = (int64_t *)sources.buf;
    ptrdiff_t failed;
    Py_BEGIN_ALLOW_THREADS
    failed = sid_sample_batch(&b);
    Py_END_ALLOW_THREADS
    if (failed >= 0) {
        const int64_t *size = region + 2 * b.sources[failed];
        PyErr_Format(PyExc_RuntimeError, "no resized-crop box fitted a %lldx%lld region in %lld attempts for index %lld",
                     (long long)size[0], (long long)size[1], max_attempts, (long long)b.indices[failed]);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:;
    Py_buffer *held[5] = {&indices, &regions, &uniforms, &boxes, &sources};
    for (int i = 0; i < got; i++) PyBuffer_Release(held[i]);
    return result;
}

PyDoc_STRVAR(stream_blocks_doc,
"stream_blocks(prefix, indices, suffix, block, out)\n--\n\n"
"For each index i of `indices` (a contiguous buffer of non-negative int64), the first `block` doubles of\n"
"numpy.random.default_rng(numpy.random.SeedSequence([*prefix, i, *suffix])).random() go to row i of `out`\n"
"(a writable float64 buffer of len(indices) * block). `prefix` and `suffix` are sequences of integers in\n"
"[0, 2**64), at most 7 of them together; OverflowError otherwise.");

static PyObject *py_stream_blocks(PyObject *self, PyObject *args) {
    PyObject *prefix_obj, *indices_obj, *suffix_obj, *out_obj;
    Py_ssize_t block;
    if (!PyArg_ParseTuple(args, "OOOnO:stream_blocks", &prefix_obj, &indices_obj, &suffix_obj, &block, &out_obj))
        return NULL;
    if (block < 0) {
        PyErr_SetString(PyExc_ValueError, "stream_blocks: block should be non-negative");
        return NULL;
    }
    sid_blocks b;
    b.prefix_len = parse_entropy(prefix_obj, b.prefix, SID_MAX_ENTROPY - 1, "stream_blocks", "prefix");
    if (b.prefix_len < 0) return NULL;
    b.suffix_len = parse_entropy(suffix_obj, b.suffix, SID_MAX_ENTROPY - 1 - b.prefix_len, "stream_blocks", "suffix");
    if (b.suffix_len < 0) return NULL;
    Py_buffer indices, out;
    if (sid_get_buffer(indices_obj, &indices, 0, INT64_FORMATS, 8, -1, "stream_blocks", "indices") < 0) return NULL;
    Py_ssize_t n = indices.len / 8;
    if (sid_get_buffer(out_obj, &out, 1, "d", 8, n * block, "stream_blocks", "out") < 0) {
        PyBuffer_Release(&indices);
        return NULL;
    }
    b.indices = (const int64_t *)indices.buf;
    b.count = n;
    b.block = block;
    b.out = (double *)out.buf;
    PyObject *result = Py_None;
    for (Py_ssize_t k = 0; k < n; k++)
        if (b.indices[k] < 0) {
            PyErr_Format(PyExc_ValueError, "stream_blocks: indices should be non-negative, got %lld",
                         (long long)b.indices[k]);
            result = NULL;
            break;
        }
    if (result != NULL) {
        Py_BEGIN_ALLOW_THREADS
        sid_stream_blocks(&b);
        Py_END_ALLOW_THREADS
        Py_INCREF(result);
    }
    PyBuffer_Release(&indices);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"uniforms", py_uniforms, METH_VARARGS, uniforms_doc},
    {"sample_batch", py_sample_batch, METH_VARARGS, sample_batch_doc},
    {"stream_blocks", py_stream_blocks, METH_VARARGS, stream_blocks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_uniforms",
    "numpy's SeedSequence + PCG64 uniform stream, natively (see sampling.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__uniforms(void) { return PyModule_Create(&module); }
