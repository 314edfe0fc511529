"""Builds the fast renderer's optional native kernels; all other metadata lives in setup.cfg.

The extension is optional: where it cannot be compiled (no C compiler), installation goes on and
backend="fast" renders with OpenCV alone. FMA contraction is turned off so that the AVX2 and the
portable kernels give the same bytes.
"""

import sys

from setuptools import Extension, setup

COMPILE_ARGS = ["/O2", "/fp:precise"] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-trapping-math"]

setup(
    ext_modules=[
        Extension(
            "single_image_dataset._uniforms",
            sources=["single_image_dataset/_uniforms.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        ),
        Extension(
            "single_image_dataset.render._kernels",
            sources=["single_image_dataset/render/_kernels.c"],
            extra_compile_args=COMPILE_ARGS,
            optional=True,
        )
    ]
)
