/*
 * libm's cos, sin and tan over float64 buffers, for geometry.py: the same C functions that Python's
 * math module calls, so each element is bit for bit math.cos (and so on) of it, which numpy's own
 * vectorised functions need not be. An optional extension: without it geometry.py maps math's
 * functions over the elements in Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>

#include "_buffers.h"

PyDoc_STRVAR(apply_doc,
"apply(function, x, out)\n--\n\n"
"out[i] = f(x[i]) for f libm's cos (function 0), sin (1) or tan (2); x and out are C-contiguous float64\n"
"buffers of the same length, out writable.");

static PyObject *py_apply(PyObject *self, PyObject *args) {
    int function;
    PyObject *x_obj, *out_obj;
    Py_buffer x, out;
    if (!PyArg_ParseTuple(args, "iOO:apply", &function, &x_obj, &out_obj)) return NULL;
    if (function < 0 || function > 2) {
        PyErr_Format(PyExc_ValueError, "apply: function should be 0 (cos), 1 (sin) or 2 (tan), got %d", function);
        return NULL;
    }
    if (sid_get_buffer(x_obj, &x, 0, "d", sizeof(double), -1, "apply", "x") < 0) return NULL;
    if (sid_get_buffer(out_obj, &out, 1, "d", sizeof(double), x.len / (Py_ssize_t)sizeof(double), "apply", "out") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    const double *in = (const double *)x.buf;
    double *dst = (double *)out.buf;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(double);
    double (*f)(double) = function == 0 ? cos : function == 1 ? sin : tan;
    for (Py_ssize_t i = 0; i < n; i++) dst[i] = f(in[i]);
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"apply", py_apply, METH_VARARGS, apply_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_libm", "libm's cos, sin and tan over float64 buffers (see geometry.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__libm(void) { return PyModule_Create(&module); }
