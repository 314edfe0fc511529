/*
 * The Python bindings of the fast renderer's native kernels (render/kernels/): argument checking, the
 * pixel memory to write, and the choice between the AVX2 and the portable kernels, which
 * set_simd(False) forces for the tests that compare them.
 *
 * Built as an optional extension: when it cannot be compiled, render/fast.py uses Pillow and OpenCV instead.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_buffers.h"
#include "kernels.h"

static int use_simd = 0;

/* The pixel memory the kernels write to: a writable buffer, or a PIL "RGB" image's own memory, as
 * exported by Pillow (11.2 and later) through the Arrow C data interface: image.__arrow_c_array__()
 * gives (schema, array) capsules of a fixed-size list of 4 uint8 per pixel, whose child's data buffer
 * is the image's pixels, contiguous. The structures are the interface's, fixed by its specification. */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

typedef struct {
    Py_buffer view; /* when a buffer was given */
    int has_view;
    uint8_t *data;
    Py_ssize_t len;
} pixel_target;

static int arrow_pixels(PyObject *pair, pixel_target *t, const char *what) {
    PyObject *schema_capsule, *array_capsule;
    if (!PyArg_ParseTuple(pair, "OO", &schema_capsule, &array_capsule)) return -1;
    if (!PyCapsule_IsValid(schema_capsule, "arrow_schema") || !PyCapsule_IsValid(array_capsule, "arrow_array")) {
        PyErr_Format(PyExc_TypeError, "%s: expected the (schema, array) capsules of image.__arrow_c_array__()", what);
        return -1;
    }
    struct ArrowSchema *schema = PyCapsule_GetPointer(schema_capsule, "arrow_schema");
    struct ArrowArray *array = PyCapsule_GetPointer(array_capsule, "arrow_array");
    if (schema->release == NULL || array->release == NULL || strcmp(schema->format, "+w:4") != 0 ||
        schema->n_children != 1 || strcmp(schema->children[0]->format, "C") != 0 || array->n_children != 1 ||
        array->offset != 0 || array->null_count != 0 || array->children[0]->n_buffers != 2 ||
        array->children[0]->offset != 0 || array->children[0]->length != 4 * array->length ||
        array->children[0]->buffers[1] == NULL) {
        PyErr_Format(PyExc_ValueError, "%s: the Arrow array is not the pixels of a PIL RGB image", what);
        return -1;
    }
    t->data = (uint8_t *)array->children[0]->buffers[1];
    t->len = (Py_ssize_t)(4 * array->length);
    return 0;
}

/* Fill `t` from `obj`, a writable buffer or the (schema, array) capsules above; release with
 * release_pixels. */
static int get_pixels(PyObject *obj, pixel_target *t, const char *what) {
    t->has_view = 0;
    if (PyTuple_Check(obj)) return arrow_pixels(obj, t, what);
    if (PyObject_GetBuffer(obj, &t->view, PyBUF_WRITABLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: the pixels should be a writable buffer, or the Arrow pair of a PIL RGB image",
                     what);
        return -1;
    }
    t->has_view = 1;
    t->data = (uint8_t *)t->view.buf;
    t->len = t->view.len;
    return 0;
}

static void release_pixels(pixel_target *t) {
    if (t->has_view) PyBuffer_Release(&t->view);
    t->has_view = 0;
}

static int read_doubles(PyObject *seq, double *out, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd numbers", what, n);
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* Thread-local scratch memory of sid_render: the kernels run without the GIL, so threads may render at once. */
#if defined(_MSC_VER)
#define SID_THREAD_LOCAL __declspec(thread)
#else
#define SID_THREAD_LOCAL _Thread_local
#endif
static SID_THREAD_LOCAL sid_workspace workspace;

/* Largest sides accepted, so that every pixel count and offset of the kernels fits in 32 bits. */
#define MAX_SIDE 32768

/* Check one sample's geometry against its source of height x width pixels; NULL or the problem. */
static const char *check_geometry(const double *box, int filter, const double *to_resized, int height, int width) {
    if (!(box[0] >= 0.0 && box[0] < box[2] && box[2] <= width && box[1] >= 0.0 && box[1] < box[3] &&
          box[3] <= height))
        return "the box should be (left, top, right, bottom) inside the source, left < right and top < bottom";
    if (filter < SID_BILINEAR || filter > SID_LANCZOS) return "the filter should be 0, 1 or 2";
    for (int i = 0; i < 6; i++)
        if (!isfinite(to_resized[i])) return "the map should hold finite numbers";
    return NULL;
}

PyDoc_STRVAR(render_doc,
"render(source, height, width, box, filter, side, to_resized, out, size)\n--\n\n"
"A sample's geometry into `out` (size x size x 4 bytes): a writable buffer, or the (schema, array) pair of\n"
"a PIL RGB image's __arrow_c_array__(), written in place. The box (left, top, right, bottom) of the RGBX\n"
"`source` (height x width x 4 bytes) is resized to side x side with PIL's filter `filter` (0 bilinear,\n"
"1 bicubic, 2 lanczos), where the warp reads it; output pixel centres map by `to_resized` (6 numbers)\n"
"into that grid, read bilinearly, and those that map outside [0, side)^2 are 0.");

static PyObject *py_render(PyObject *self, PyObject *args) {
    Py_buffer src;
    pixel_target dst;
    int height, width, filter, side, size;
    PyObject *box_obj, *map_obj, *out;
    if (!PyArg_ParseTuple(args, "y*iiOiiOOi:render", &src, &height, &width, &box_obj, &filter, &side, &map_obj, &out,
                          &size))
        return NULL;
    if (get_pixels(out, &dst, "render") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    PyObject *result = NULL;
    render_job j;
    if (height < 1 || width < 1 || side < 1 || side > MAX_SIDE || size < 1 || size > MAX_SIDE ||
        (Py_ssize_t)height * width > INT32_MAX || (Py_ssize_t)height * width * 4 != src.len ||
        (Py_ssize_t)size * size * 4 != dst.len) {
        PyErr_SetString(PyExc_ValueError, "render: buffer sizes do not match the given shapes");
        goto done;
    }
    if (read_doubles(box_obj, j.box, 4, "render: box") < 0 || read_doubles(map_obj, j.to_resized, 6, "render: map") < 0)
        goto done;
    const char *problem = check_geometry(j.box, filter, j.to_resized, height, width);
    if (problem != NULL) {
        PyErr_Format(PyExc_ValueError, "render: %s", problem);
        goto done;
    }
    j.src = (const uint32_t *)src.buf;
    j.height = height;
    j.width = width;
    j.filter = filter;
    j.side = side;
    j.dst = (uint32_t *)dst.data;
    j.size = size;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = sid_render(&j, &workspace, use_simd);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&src);
    release_pixels(&dst);
    return result;
}

/* Append op `code` with `value` (a factor; for the hue, the shift of PIL's hue byte, taken modulo 256). */
static void add_op(jitter_ops *ops, int code, double value) {
    ops->code[ops->count] = code;
    ops->alpha[ops->count] = code == OP_HUE ? (float)(((int)value) & 255) : (float)value;
    ops->count++;
}

/* Fill the unused slots with identities, which the vector code runs through. */
static void pad_ops(jitter_ops *ops) {
    for (int k = ops->count; k < 4; k++) {
        ops->code[k] = OP_BRIGHTNESS;
        ops->alpha[k] = 1.0f;
    }
}

PyDoc_STRVAR(jitter_doc,
"jitter(pixels, ops)\n--\n\n"
"Apply torchvision's PIL colour jitter, in place, to RGBX `pixels` (a writable buffer, or an RGB PIL\n"
"image's (schema, array) Arrow pair, as for warp). `ops` is a sequence of at most\n"
"4 (op, value): op 0 brightness, 1 contrast, 2 saturation (value: the factor) or 3 hue (value: the\n"
"shift of PIL's hue byte, an integer taken modulo 256), applied in the given order; contrast at most once.");

static PyObject *py_jitter(PyObject *self, PyObject *args) {
    pixel_target buf;
    PyObject *pixels, *seq;
    if (!PyArg_ParseTuple(args, "OO:jitter", &pixels, &seq)) return NULL;
    if (get_pixels(pixels, &buf, "jitter") < 0) return NULL;
    PyObject *result = NULL, *fast = NULL;
    jitter_ops ops;
    int contrasts = 0;
    if (buf.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "jitter: the buffer should hold 4-byte pixels");
        goto done;
    }
    fast = PySequence_Fast(seq, "jitter: ops should be a sequence");
    if (fast == NULL) goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    if (count > 4) {
        PyErr_SetString(PyExc_ValueError, "jitter: at most 4 ops");
        goto done;
    }
    ops.count = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        int code;
        double value;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, k), "id:jitter op", &code, &value)) goto done;
        if (code < OP_BRIGHTNESS || code > OP_HUE) {
            PyErr_Format(PyExc_ValueError, "jitter: unknown op %d", code);
            goto done;
        }
        contrasts += code == OP_CONTRAST;
        add_op(&ops, code, value);
    }
    if (contrasts > 1) {
        PyErr_SetString(PyExc_ValueError, "jitter: contrast may appear once");
        goto done;
    }
    pad_ops(&ops);
    Py_BEGIN_ALLOW_THREADS
    sid_jitter((uint32_t *)buf.data, buf.len / 4, &ops, use_simd);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(fast);
    release_pixels(&buf);
    return result;
}
PyDoc_STRVAR(render_batch_doc,
"render_batch(levels, level, boxes, filters, side, maps, ops, values, out, size)\n--\n\n"
"Render, jitter and split into planes a batch of N images, writing `out`, a writable uint8 buffer of\n"
"N x 3 x size x size (a CHW tensor's memory). Sample k reads the RGBX pyramid level `level[k]` of\n"
"`levels` (a sequence of (buffer, height, width), level j the source reduced 2**j times), resizing\n"
"row k of `boxes` (float64 N x 4, in the source's pixels, scaled by 2**-level[k] here) with the filter\n"
"`filters[k]` (int8) to side x side and warping it by row k of `maps` (float64 N x 6), as render does;\n"
"then applies the ops `ops[k]` (int8 N x 4, -1 padded) with `values[k]` (float64 N x 4) as jitter does.\n"
"Image k is the bytes render + jitter give for it alone.");

#define MAX_LEVELS 40

typedef struct {
    Py_buffer view;
    int height, width;
} level_buffer;

/* A batch of samples as render_batch and render_views take it: the pyramid, and per sample its level, box,
 * filter, map and jitter. */
typedef struct {
    PyObject *levels_seq;
    Py_ssize_t num_levels, got_levels, n;
    level_buffer levels[MAX_LEVELS];
    Py_buffer held[6]; /* level, boxes, filters, maps, ops, values */
    int got;
    int side, size;
} sample_batch;

/* Check the 4 op codes of sample k: ops padded with -1, contrast at most once. 0, or -1 with a ValueError naming
 * `func`, `what` (a prefix such as "views[1]: ", or "") and the sample. */
static int check_ops(const int8_t *codes, Py_ssize_t k, const char *func, const char *what) {
    int contrasts = 0;
    for (int q = 0; q < 4; q++) {
        int code = codes[q], after_padding = q > 0 && codes[q - 1] < 0 && code >= 0;
        if (code < -1 || code > OP_HUE || after_padding) {
            PyErr_Format(PyExc_ValueError, "%s: %sop %d of sample %zd is unknown or follows -1", func, what, code, k);
            return -1;
        }
        contrasts += code == OP_CONTRAST;
    }
    if (contrasts > 1) {
        PyErr_Format(PyExc_ValueError, "%s: %scontrast may appear once per sample, twice in sample %zd", func, what, k);
        return -1;
    }
    return 0;
}

/* The ops of one row (codes -1 padded, values as add_op takes them), ready for sid_jitter; count 0 for none. */
static jitter_ops row_ops(const int8_t *codes, const double *values) {
    jitter_ops ops = {0};
    for (int q = 0; q < 4 && codes[q] >= 0; q++) add_op(&ops, codes[q], values[q]);
    if (ops.count) pad_ops(&ops);
    return ops;
}

static void release_samples(sample_batch *s) {
    for (int i = 0; i < s->got; i++) PyBuffer_Release(&s->held[i]);
    for (Py_ssize_t i = 0; i < s->got_levels; i++) PyBuffer_Release(&s->levels[i].view);
    Py_XDECREF(s->levels_seq);
    s->got = 0;
    s->got_levels = 0;
    s->levels_seq = NULL;
}

/* Get and check the samples' buffers (errors name `func`); 0, or -1 with an exception set. Release with
 * release_samples either way. */
static int get_samples(sample_batch *s, PyObject *levels_obj, PyObject *level_obj, PyObject *boxes_obj,
                       PyObject *filters_obj, int side, PyObject *maps_obj, PyObject *ops_obj, PyObject *values_obj,
                       int size, const char *func) {
    s->got = 0;
    s->got_levels = 0;
    s->side = side;
    s->size = size;
    s->levels_seq = PySequence_Fast(levels_obj, "levels should be a sequence");
    if (s->levels_seq == NULL) return -1;
    s->num_levels = PySequence_Fast_GET_SIZE(s->levels_seq);
    if (s->num_levels < 1 || s->num_levels > MAX_LEVELS || side < 1 || side > MAX_SIDE || size < 1 ||
        size > MAX_SIDE) {
        PyErr_Format(PyExc_ValueError, "%s: 1 to 40 levels, and a side and a size from 1 to 32768", func);
        return -1;
    }
    for (; s->got_levels < s->num_levels; s->got_levels++) {
        level_buffer *l = &s->levels[s->got_levels];
        PyObject *src;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(s->levels_seq, s->got_levels), "Oii:level", &src, &l->height,
                              &l->width))
            return -1;
        if (l->height < 1 || l->width < 1 || (Py_ssize_t)l->height * l->width > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: a level should be at least 1x1 and below 2**31 pixels", func);
            return -1;
        }
        if (sid_get_buffer(src, &l->view, 0, NULL, 4, (Py_ssize_t)l->height * l->width, func, "a level") < 0)
            return -1;
    }
    const Py_ssize_t n = s->n = PyObject_Length(level_obj);
    if (n < 0) return -1;
    PyObject *objs[6] = {level_obj, boxes_obj, filters_obj, maps_obj, ops_obj, values_obj};
    const char *names[6] = {"level", "boxes", "filters", "maps", "ops", "values"};
    const Py_ssize_t itemsizes[6] = {8, 8, 1, 8, 1, 8}, items[6] = {n, 4 * n, n, 6 * n, 4 * n, 4 * n};
    for (; s->got < 6; s->got++)
        if (sid_get_buffer(objs[s->got], &s->held[s->got], 0, NULL, itemsizes[s->got], items[s->got], func,
                           names[s->got]) < 0)
            return -1;
    const int64_t *lv = (const int64_t *)s->held[0].buf;
    const double *b = (const double *)s->held[1].buf, *f = (const double *)s->held[3].buf;
    const int8_t *filter = (const int8_t *)s->held[2].buf, *codes = (const int8_t *)s->held[4].buf;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (lv[k] < 0 || lv[k] >= s->num_levels) {
            PyErr_Format(PyExc_ValueError, "%s: level %lld of sample %zd does not exist", func, (long long)lv[k], k);
            return -1;
        }
        double box[4];
        for (int i = 0; i < 4; i++) box[i] = ldexp(b[4 * k + i], -(int)lv[k]);
        const char *problem = check_geometry(box, filter[k], f + 6 * k, s->levels[lv[k]].height,
                                             s->levels[lv[k]].width);
        if (problem != NULL) {
            PyErr_Format(PyExc_ValueError, "%s: sample %zd: %s", func, k, problem);
            return -1;
        }
        if (check_ops(codes + 4 * k, k, func, "") < 0) return -1;
    }
    return 0;
}

/* Render sample k and apply its jitter into `scratch` (size x size RGBX pixels), without the GIL; 0, or -1 where
 * scratch memory could not be allocated. */
static int render_sample(const sample_batch *s, Py_ssize_t k, uint32_t *scratch) {
    const int64_t level = ((const int64_t *)s->held[0].buf)[k];
    const level_buffer *l = &s->levels[level];
    const double *b = (const double *)s->held[1].buf;
    render_job j;
    j.src = (const uint32_t *)l->view.buf;
    j.height = l->height;
    j.width = l->width;
    for (int i = 0; i < 4; i++) j.box[i] = ldexp(b[4 * k + i], -(int)level);
    j.filter = ((const int8_t *)s->held[2].buf)[k];
    j.side = s->side;
    memcpy(j.to_resized, (const double *)s->held[3].buf + 6 * k, sizeof(j.to_resized));
    j.dst = scratch;
    j.size = s->size;
    if (sid_render(&j, &workspace, use_simd)) return -1;
    jitter_ops ops = row_ops((const int8_t *)s->held[4].buf + 4 * k, (const double *)s->held[5].buf + 4 * k);
    if (ops.count) sid_jitter(scratch, (ptrdiff_t)s->size * s->size, &ops, use_simd);
    return 0;
}

/* Render each sample of `s` in turn into one scratch buffer and pass it to use(ctx, k, scratch), without the GIL;
 * 0, or -1 with MemoryError set where memory ran out (render_sample's or `use`'s -1). */
static int for_each_sample(const sample_batch *s, int (*use)(void *ctx, Py_ssize_t k, const uint32_t *scratch),
                           void *ctx) {
    uint32_t *scratch = PyMem_RawMalloc((size_t)s->size * s->size * 4);
    if (scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < s->n && !failed; k++) failed = render_sample(s, k, scratch) || use(ctx, k, scratch);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    if (failed) PyErr_NoMemory();
    return failed ? -1 : 0;
}

typedef struct {
    uint8_t *dst;
    Py_ssize_t pixels;
} planes_target;

/* for_each_sample's `use` of render_batch: sample k into its planes of the output. */
static int write_planes(void *ctx, Py_ssize_t k, const uint32_t *scratch) {
    const planes_target *t = ctx;
    uint8_t *image = t->dst + 3 * t->pixels * k;
    sid_to_planes(scratch, t->pixels, image, image + t->pixels, image + 2 * t->pixels, use_simd);
    return 0;
}

static PyObject *py_render_batch(PyObject *self, PyObject *args) {
    PyObject *levels_obj, *level_obj, *boxes_obj, *filters_obj, *maps_obj, *ops_obj, *values_obj, *out_obj;
    int side, size;
    if (!PyArg_ParseTuple(args, "OOOOiOOOOi:render_batch", &levels_obj, &level_obj, &boxes_obj, &filters_obj, &side,
                          &maps_obj, &ops_obj, &values_obj, &out_obj, &size))
        return NULL;
    sample_batch s;
    Py_buffer out;
    int got_out = 0;
    PyObject *result = NULL;
    if (get_samples(&s, levels_obj, level_obj, boxes_obj, filters_obj, side, maps_obj, ops_obj, values_obj, size,
                    "render_batch") < 0)
        goto done;
    const Py_ssize_t pixels = (Py_ssize_t)size * size;
    if (sid_get_buffer(out_obj, &out, 1, NULL, 1, 3 * pixels * s.n, "render_batch", "out") < 0) goto done;
    got_out = 1;
    planes_target target = {(uint8_t *)out.buf, pixels};
    if (for_each_sample(&s, write_planes, &target) < 0) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    if (got_out) PyBuffer_Release(&out);
    release_samples(&s);
    return result;
}

PyDoc_STRVAR(render_views_doc,
"render_views(levels, level, boxes, filters, side, maps, ops, values, size, views)\n--\n\n"
"Render a batch of N samples as render_batch does (without writing them), and write their views. `views` is a\n"
"sequence of (view_size, taps, crops, flags, ops, values, kernels, out), one per view: `crops` int64 N x 4\n"
"(top, left, height, width inside the size x size sample), `flags` uint8 N x 5 (0 or 1: hflip, grayscale,\n"
"blur, solarize, and whether the resize goes down the columns first), `ops` and `values` the view's jitter\n"
"as for render_batch, `kernels` float32 N x taps (the blur's symmetric kernel of each row that blurs; taps odd\n"
"and below 2 view_size) and `out` a writable uint8 buffer of N x 3 x view_size x view_size. View k of each\n"
"is its crop of sample k resized with PIL's\n"
"antialiased bilinear filter to view_size, then flipped, jittered, turned gray, blurred and solarized where\n"
"its flags and ops say (kernels.h, sid_view).");

typedef struct {
    int size, taps;
    Py_buffer held[6]; /* crops, flags, ops, values, kernels, out */
    int got;
} view_batch;

/* Get and check view `v`'s buffers for n samples of `side` px; 0, or -1 with an exception set. Release its
 * buffers (held[0 .. got - 1]) either way. */
static int get_view(view_batch *view, PyObject *spec, Py_ssize_t v, Py_ssize_t n, int side) {
    PyObject *objs[6];
    view->got = 0;
    if (!PyArg_ParseTuple(spec, "iiOOOOOO:view", &view->size, &view->taps, &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5]))
        return -1;
    const int size = view->size, taps = view->taps;
    if (size < 1 || size > MAX_SIDE || taps < 1 || taps % 2 == 0 || taps > 2 * size - 1) {
        PyErr_Format(PyExc_ValueError, "render_views: views[%zd]: a size from 1 to 32768 and an odd number of taps "
                     "below twice the size, got size %d and %d taps", v, size, taps);
        return -1;
    }
    const char *names[6] = {"crops", "flags", "ops", "values", "kernels", "out"};
    const Py_ssize_t pixels = (Py_ssize_t)size * size;
    const Py_ssize_t itemsizes[6] = {8, 1, 1, 8, 4, 1}, items[6] = {4 * n, 5 * n, 4 * n, 4 * n, taps * n, 3 * pixels * n};
    for (; view->got < 6; view->got++)
        if (sid_get_buffer(objs[view->got], &view->held[view->got], view->got == 5, NULL, itemsizes[view->got],
                           items[view->got], "render_views", names[view->got]) < 0)
            return -1;
    const int64_t *crop = (const int64_t *)view->held[0].buf;
    const uint8_t *flags = (const uint8_t *)view->held[1].buf;
    const int8_t *codes = (const int8_t *)view->held[2].buf;
    char what[40];
    PyOS_snprintf(what, sizeof(what), "views[%zd]: ", v);
    for (Py_ssize_t k = 0; k < n; k++) {
        const int64_t *c = crop + 4 * k;
        if (!(c[0] >= 0 && c[1] >= 0 && c[2] >= 1 && c[3] >= 1 && c[0] <= side - c[2] && c[1] <= side - c[3])) {
            PyErr_Format(PyExc_ValueError, "render_views: views[%zd]: the crop of sample %zd should be (top, left, "
                         "height, width) inside the %d px sample, height and width at least 1", v, k, side);
            return -1;
        }
        for (int i = 0; i < 5; i++) {
            if (flags[5 * k + i] > 1) {
                PyErr_Format(PyExc_ValueError, "render_views: views[%zd]: the flags of sample %zd should be 0 or 1",
                             v, k);
                return -1;
            }
        }
        if (check_ops(codes + 4 * k, k, "render_views", what) < 0) return -1;
    }
    return 0;
}

/* View k of `view` of the rendered sample `sample` (side x side RGBX), without the GIL. */
static int render_view(const view_batch *view, Py_ssize_t k, const uint32_t *sample, int side) {
    const int64_t *crop = (const int64_t *)view->held[0].buf + 4 * k;
    const uint8_t *flags = (const uint8_t *)view->held[1].buf + 5 * k;
    const Py_ssize_t pixels = (Py_ssize_t)view->size * view->size;
    uint8_t *image = (uint8_t *)view->held[5].buf + 3 * pixels * k;
    view_job j;
    j.sample = sample;
    j.side = side;
    j.top = (int)crop[0];
    j.left = (int)crop[1];
    j.height = (int)crop[2];
    j.width = (int)crop[3];
    j.size = view->size;
    j.hflip = flags[0];
    j.grayscale = flags[1];
    j.solarize = flags[3];
    j.vertical_first = flags[4];
    j.jitter = row_ops((const int8_t *)view->held[2].buf + 4 * k, (const double *)view->held[3].buf + 4 * k);
    j.blur = (const float *)view->held[4].buf + (Py_ssize_t)view->taps * k;
    j.blur_taps = flags[2] ? view->taps : 0;
    j.planes[0] = image;
    j.planes[1] = image + pixels;
    j.planes[2] = image + 2 * pixels;
    return sid_view(&j, &workspace, use_simd);
}

typedef struct {
    const view_batch *views;
    Py_ssize_t count;
    int side;
} view_target;

/* for_each_sample's `use` of render_views: every view of sample k. */
static int write_views(void *ctx, Py_ssize_t k, const uint32_t *scratch) {
    const view_target *t = ctx;
    for (Py_ssize_t v = 0; v < t->count; v++)
        if (render_view(&t->views[v], k, scratch, t->side)) return -1;
    return 0;
}

static PyObject *py_render_views(PyObject *self, PyObject *args) {
    PyObject *levels_obj, *level_obj, *boxes_obj, *filters_obj, *maps_obj, *ops_obj, *values_obj, *views_obj;
    int side, size;
    if (!PyArg_ParseTuple(args, "OOOOiOOOiO:render_views", &levels_obj, &level_obj, &boxes_obj, &filters_obj, &side,
                          &maps_obj, &ops_obj, &values_obj, &size, &views_obj))
        return NULL;
    sample_batch s;
    PyObject *result = NULL, *views_seq = NULL;
    view_batch *views = NULL;
    Py_ssize_t num_views = 0, got_views = 0;
    if (get_samples(&s, levels_obj, level_obj, boxes_obj, filters_obj, side, maps_obj, ops_obj, values_obj, size,
                    "render_views") < 0)
        goto done;
    views_seq = PySequence_Fast(views_obj, "render_views: views should be a sequence");
    if (views_seq == NULL) goto done;
    num_views = PySequence_Fast_GET_SIZE(views_seq);
    views = PyMem_Calloc(num_views ? (size_t)num_views : 1, sizeof(view_batch));
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got_views < num_views; got_views++)
        if (get_view(&views[got_views], PySequence_Fast_GET_ITEM(views_seq, got_views), got_views, s.n, size) < 0) {
            got_views++; /* release what it got */
            goto done;
        }
    view_target target = {views, num_views, size};
    if (for_each_sample(&s, write_views, &target) < 0) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    for (Py_ssize_t v = 0; v < got_views; v++)
        for (int i = 0; i < views[v].got; i++) PyBuffer_Release(&views[v].held[i]);
    PyMem_Free(views);
    Py_XDECREF(views_seq);
    release_samples(&s);
    return result;
}

PyDoc_STRVAR(set_simd_doc,
"set_simd(level)\n--\n\n"
"Which kernels to run: 0 the portable ones, 1 AVX2, 2 AVX-512 where the kernel has such a version (AVX2\n"
"elsewhere), each only as far as the CPU runs it; True the widest the CPU runs, False 0. They give the same\n"
"bytes. Returns the level in use.");

static PyObject *py_set_simd(PyObject *self, PyObject *arg) {
    long level;
    if (PyBool_Check(arg)) {
        level = arg == Py_True ? SID_VECTOR_AVX512 : SID_PORTABLE;
    } else {
        level = PyLong_AsLong(arg);
        if (level == -1 && PyErr_Occurred()) return NULL;
        if (level < SID_PORTABLE || level > SID_VECTOR_AVX512) {
            PyErr_Format(PyExc_ValueError, "set_simd: the level should be 0, 1 or 2, got %ld", level);
            return NULL;
        }
    }
    const int widest = sid_cpu_simd();
    use_simd = level < widest ? (int)level : widest;
    return PyLong_FromLong(use_simd);
}

PyDoc_STRVAR(simd_doc, "simd()\n--\n\nThe kernels in use: 0 portable, 1 AVX2, 2 AVX-512 (see set_simd).");

static PyObject *py_simd(PyObject *self, PyObject *unused) { return PyLong_FromLong(use_simd); }

static PyMethodDef methods[] = {
    {"render", py_render, METH_VARARGS, render_doc},
    {"jitter", py_jitter, METH_VARARGS, jitter_doc},
    {"render_batch", py_render_batch, METH_VARARGS, render_batch_doc},
    {"render_views", py_render_views, METH_VARARGS, render_views_doc},
    {"set_simd", py_set_simd, METH_O, set_simd_doc},
    {"simd", py_simd, METH_NOARGS, simd_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Native resampling, warp and colour-jitter kernels of the fast renderer (see render/fast.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    use_simd = sid_cpu_simd();
    return PyModule_Create(&module);
}
