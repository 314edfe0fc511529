/*
 * The buffer check that the package's Python bindings share (_uniforms.c, render/_kernels.c): a
 * C-contiguous buffer, writable where asked, of the expected item format and number of items, or one
 * clear error naming the function and the argument. Include it after <Python.h>.
 */

#ifndef SID_BUFFERS_H
#define SID_BUFFERS_H

#include <Python.h>
#include <string.h>

/* Get the buffer of `obj` into `view`: C-contiguous, writable if `writable`, of `items` items of `itemsize`
 * bytes (`items` < 0: any number), whose struct format is one of the characters of `formats`
 * (NULL: any format). Returns 0, and the caller releases `view` with PyBuffer_Release; or sets TypeError
 * (not such a buffer, or another item format) or ValueError (another size), naming `func` and `what`, and
 * returns -1. */
static inline int sid_get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *formats,
                                 Py_ssize_t itemsize, Py_ssize_t items, const char *func, const char *what) {
    int flags = (writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS | (formats ? PyBUF_FORMAT : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: %s should be a C-contiguous%s buffer", func, what,
                     writable ? " writable" : "");
        return -1;
    }
    if (formats != NULL && (view->itemsize != itemsize || view->format == NULL || view->format[0] == '\0' ||
                            strchr(formats, view->format[0]) == NULL || view->format[1] != '\0')) {
        PyErr_Format(PyExc_TypeError, "%s: %s has item format '%s', expected one of '%s' of %zd bytes", func, what,
                     view->format ? view->format : "B", formats, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    if (items >= 0 && view->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %s holds %zd bytes, expected %zd", func, what, view->len, items * itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#endif
