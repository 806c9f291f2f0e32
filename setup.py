"""Builds the medinfer Python package with the project's CMake (pyproject.toml names this backend).

The extension medinfer._medinfer and libmedinfer.so come from a CMake build: $MEDINFER_BUILD_DIR when
set (an existing build, e.g. the test build: only what changed is rebuilt), else build/pip, configured
here with the tests, benchmarks and example hosts off. Both files are staged by `cmake --install` (so
the extension carries its install RPATH, which includes $ORIGIN) and copied into the package, so
`import medinfer` needs no LD_LIBRARY_PATH. Nothing is downloaded: every dependency is a Debian package.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"project\(medinfer VERSION ([0-9.]+)", text)
    if not match:
        raise RuntimeError("CMakeLists.txt: no 'project(medinfer VERSION x.y.z' line")
    return match.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR") or ROOT / "build" / "pip").resolve()
        if not (build / "CMakeCache.txt").exists():
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                            "-DMEDINFER_BUILD_PYTHON=ON", "-DMEDINFER_BUILD_TESTS=OFF",
                            "-DMEDINFER_BUILD_BENCHMARKS=OFF", "-DMEDINFER_BUILD_EXAMPLES=OFF",
                            f"-DPython3_EXECUTABLE={sys.executable if sys.executable.startswith('/usr/bin/') else '/usr/bin/python3'}"],
                           check=True)
        jobs = str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build), "--target", "medinfer_python", "-j", jobs], check=True)
        with tempfile.TemporaryDirectory() as stage:
            subprocess.run(["cmake", "--install", str(build), "--prefix", stage], check=True,
                           stdout=subprocess.DEVNULL)
            stage = pathlib.Path(stage)
            extension = next(stage.glob("lib/**/medinfer/_medinfer*.so"))
            library = next(p for p in stage.glob("lib/**/libmedinfer.so.*") if p.name.count(".") == 2)
            target = pathlib.Path(self.get_ext_fullpath(ext.name))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(extension, target)
            # the SONAME file (libmedinfer.so.0), found by the extension's $ORIGIN RPATH
            shutil.copyfile(library, target.parent / library.name)


setup(version=project_version(), ext_modules=[Extension("medinfer._medinfer", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
