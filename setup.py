"""Build of the optional C chain loop.

The extension is optional: where no C compiler is available the package still
installs and paygkit.token runs on its pure-Python engine.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "paygkit.token._chain",
            sources=["src/paygkit/token/_chain.c"],
            extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
