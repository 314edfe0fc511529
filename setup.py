"""Builds the three optional C extensions; all other metadata lives in setup.cfg.

- ``single_image_dataset._uniforms``: the sampler's random stream (numpy's, bit for bit), natively;
  without it, numpy draws the same numbers, more slowly.
- ``single_image_dataset._libm``: libm's cos, sin and tan over arrays, bit for bit ``math``'s, for the
  batched geometry; without it, ``math``'s functions are mapped over the elements in Python.
- ``single_image_dataset.render._kernels``: the fast renderer's resampling, warp and colour jitter, the pure C
  kernels of ``render/kernels/`` behind the bindings of ``render/_kernels.c``; without it,
  backend="fast" renders with Pillow and OpenCV. FMA contraction is turned off so that the AVX2 and the
  portable kernels give the same bytes.

Where they cannot be compiled (no C compiler), installation goes on without them.
"""

import sys

from setuptools import Extension, setup

COMPILE_ARGS = ["/O2", "/fp:precise"] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-trapping-math"]
KERNELS = "single_image_dataset/render/kernels"

setup(
    ext_modules=[
        Extension(
            "single_image_dataset._uniforms",
            sources=["single_image_dataset/_uniforms.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "single_image_dataset._libm",
            sources=["single_image_dataset/_libm.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "single_image_dataset.render._kernels",
            sources=[
                "single_image_dataset/render/_kernels.c",
                f"{KERNELS}/resample.c",
                f"{KERNELS}/warp.c",
                f"{KERNELS}/jitter.c",
                f"{KERNELS}/planes.c",
            ],
            include_dirs=[KERNELS],
            depends=[f"{KERNELS}/kernels.h"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
    ]
)
