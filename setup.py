"""Build of the compiled extension streamrnn._core (everything else is in pyproject.toml)."""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Choose compiler flags by compiler type: GCC/Clang get -O3 -std=c99, MSVC /O2 (it has
    no C99 switch and rejects the GCC spellings; its default floating-point model is already
    /fp:precise, i.e. no fast-math)."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            args = ["/O2"]
        else:
            # Never -march=native (wheels run on other CPUs) and never -ffast-math
            # (it can switch the whole process to flush-to-zero). -fno-trapping-math only
            # lets the compiler evaluate both sides of a select, which the branch-free float
            # activations (src_c/fastmath.h) need to vectorise; -fno-math-errno lets sqrt
            # vectorise (the core never reads errno); -ffp-contract=fast lets the AVX2+FMA
            # clones fuse multiply-adds (one rounding instead of two: never less accurate).
            # All are understood by GCC and Clang (Linux, macOS); .ci/portability checks the
            # C core as strict C99 with -Werror.
            args = ["-O3", "-std=c99", "-fno-strict-aliasing", "-fno-trapping-math",
                    "-fno-math-errno", "-ffp-contract=fast"]
        for ext in self.extensions:
            ext.extra_compile_args = args + list(ext.extra_compile_args)
        super().build_extensions()


here = os.path.dirname(os.path.abspath(__file__))
c_sources = sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, "src_c", "*.c")))

ext = Extension(
    "streamrnn._core",
    sources=["streamrnn/_core.pyx"] + c_sources,
    include_dirs=["src_c", np.get_include()],
    libraries=[] if os.name == "nt" else ["m"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    depends=glob.glob(os.path.join("src_c", "*.h")) + glob.glob(os.path.join("src_c", "*.inc")),
)

setup(
    ext_modules=cythonize(
        [ext],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
