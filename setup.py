"""Builds the three optional C extensions; all other metadata lives in setup.cfg.

- ``single_image_dataset._uniforms``: the sampler's random stream (numpy's, bit for bit), natively,
  the pure C of ``uniforms/`` behind the bindings of ``_uniforms.c``; without it, numpy draws the same
  numbers, more slowly.
- ``single_image_dataset._libm``: libm's cos, sin and tan over arrays, bit for bit ``math``'s, for the
  batched geometry; without it, ``math``'s functions are mapped over the elements in Python.
- ``single_image_dataset.render._kernels``: the fast renderer's resampling, warp and colour jitter, the pure C
  kernels of ``render/kernels/`` behind the bindings of ``render/_kernels.c``; without it,
  backend="fast" renders with Pillow and OpenCV. FMA contraction is turned off so that the AVX2 and the
  portable kernels give the same bytes; errno is not set by math functions, so that they inline.

The bindings check their buffers with the one checker of ``_buffers.h``.

Where they cannot be compiled (no C compiler), installation goes on without them.
"""

import sys

from setuptools import Extension, setup

GCC_ARGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno"]
COMPILE_ARGS = ["/O2", "/fp:precise"] if sys.platform == "win32" else GCC_ARGS
PACKAGE = "single_image_dataset"
UNIFORMS = f"{PACKAGE}/uniforms"
KERNELS = f"{PACKAGE}/render/kernels"

setup(
    ext_modules=[
        Extension(
            "single_image_dataset._uniforms",
            sources=[f"{PACKAGE}/_uniforms.c", f"{UNIFORMS}/stream.c", f"{UNIFORMS}/batch.c", f"{UNIFORMS}/blocks.c"],
            include_dirs=[PACKAGE, UNIFORMS],
            depends=[f"{PACKAGE}/_buffers.h", f"{UNIFORMS}/uniforms.h"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "single_image_dataset._libm",
            sources=[f"{PACKAGE}/_libm.c"],
            include_dirs=[PACKAGE],
            depends=[f"{PACKAGE}/_buffers.h"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "single_image_dataset.render._kernels",
            sources=[
                f"{PACKAGE}/render/_kernels.c",
                f"{KERNELS}/resample.c",
                f"{KERNELS}/warp.c",
                f"{KERNELS}/jitter.c",
                f"{KERNELS}/planes.c",
                f"{KERNELS}/views.c",
            ],
            include_dirs=[PACKAGE, KERNELS],
            depends=[f"{PACKAGE}/_buffers.h", f"{KERNELS}/kernels.h", f"{KERNELS}/jitter_vector.h",
                     f"{KERNELS}/combine_vector.h"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
    ]
)
