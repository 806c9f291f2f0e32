"""The Python package as a researcher and a system packager install it, offline: `pip install
--no-build-isolation .` into a venv made (and removed) here, and `cmake --install` into a prefix; in
both, `import medinfer` works from another directory without LD_LIBRARY_PATH, and the version is the
project's."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR", ROOT / "build"))
VERSION = re.search(r"project\(medinfer VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
SAMPLE = """
import os, sys, medinfer, pathlib
assert medinfer.__version__ == sys.argv[1], medinfer.__version__
p = medinfer.Pipeline.open(pathlib.Path(sys.argv[2]))
assert p.labels == ["lesion"]
print(os.path.dirname(medinfer.__file__))
"""


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["MEDINFER_BUILD_DIR"] = str(BUILD)  # reuse the test build: only what changed is rebuilt
    return env


def test_pip_install_into_a_venv(tmp_path):
    pytest.importorskip("venv")
    if subprocess.run([sys.executable, "-c", "import ensurepip"], capture_output=True).returncode != 0:
        pytest.skip("python3-venv is not installed (scripts/install-deps.sh test installs it)")
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "--disable-pip-version-check", "--no-input"]
    r = subprocess.run(pip + ["install", "--no-build-isolation", "--no-index", str(ROOT)], capture_output=True,
                       text=True, env=clean_env(), timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    show = subprocess.run(pip + ["show", "medinfer"], capture_output=True, text=True, check=True).stdout
    assert f"Version: {VERSION}" in show
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([str(venv / "bin" / "python"), "-c", SAMPLE, VERSION, str(ROOT / "models" / "demo")],
                       cwd=elsewhere, capture_output=True, text=True, env=clean_env())
    assert r.returncode == 0, r.stderr
    installed = pathlib.Path(r.stdout.strip())
    assert installed.is_relative_to(venv)  # the venv's copy, not the build tree's
    assert (installed / "libmedinfer.so.0").exists() and (installed / "py.typed").exists()
    # the extension finds the library beside it ($ORIGIN), not through the build tree
    runpath = subprocess.run(["readelf", "-d", str(next(installed.glob("_medinfer*.so")))], capture_output=True,
                             text=True).stdout
    assert "$ORIGIN" in runpath and str(BUILD) not in runpath
    r = subprocess.run(pip + ["uninstall", "-y", "medinfer"], capture_output=True, text=True)
    assert r.returncode == 0 and not installed.exists()


def test_cmake_install_puts_the_package_where_python_finds_it(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], check=True, capture_output=True)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "dist-packages"
    assert (site / "medinfer" / "__init__.py").exists(), sorted(str(p) for p in prefix.rglob("medinfer*"))
    env = clean_env()
    env["PYTHONPATH"] = str(site)
    r = subprocess.run(["/usr/bin/python3", "-c", SAMPLE, VERSION, str(ROOT / "models" / "demo")], cwd=tmp_path,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert pathlib.Path(r.stdout.strip()) == site / "medinfer"
    # libmedinfer.so from the prefix's libdir (RPATH $ORIGIN/../../..), not from the build tree
    maps = subprocess.run(["/usr/bin/python3", "-c", "import medinfer; print(open('/proc/self/maps').read())"],
                          cwd=tmp_path, capture_output=True, text=True, env=env).stdout
    lib = [l.split()[-1] for l in maps.splitlines() if "libmedinfer.so" in l]
    assert lib and all(l.startswith(str(prefix)) for l in lib), lib
