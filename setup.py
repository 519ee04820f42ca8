"""The optional C part of Mayuri: the file-access tracer preloaded into jobs.

Everything else is in pyproject.toml. The tracer is an ordinary shared
library (no Python API), built with the extension machinery so that a wheel
or an editable install carries it; where it cannot be built (no compiler),
the install goes on and jobs fall back to the Python audit hook.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mayuri.closure._tracer",
            sources=["mayuri/closure/tracer.c"],
            libraries=["dl"],
            extra_compile_args=["-O2", "-fvisibility=default"],
            optional=True,
        )
    ]
)
