"""keras-switch as a user gets it: the wheel built from this checkout,
pip-installed with `[cpu,train]` (or other extras) into a fresh venv (no
system site-packages).

    from tests import wheel_env
    python = wheel_env.venv_python()  # <venv>/bin/python; keras-switch-train is beside it
    python = wheel_env.venv_python("cpu")  # what README's install line gives

For the tests marked `wheel` (pytest.ini; slow too: the first call takes
minutes). Standard library only. Built once per process and removed at exit:
the wheel from a copy of the checkout (`pip wheel`, isolated as pip builds it
for a user; the checkout gets no build/ or egg-info), then the venv, with
TensorFlow and the rest from pip's cache or its index.
"""

import atexit
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRAS = "cpu,train"
# Not copied for the build: version control, venvs, build outputs, runs.
_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache", "runs", "bazel-*")
_TAIL_CHARS = 4000


def clean_env():
    """os.environ without PYTHONPATH, so nothing of the checkout leaks into
    the venv's processes."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    return env


def _check_call(cmd, cwd):
    """Runs `cmd`; raises RuntimeError with the command and its output tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                           f"output tail:\n{proc.stdout[-_TAIL_CHARS:]}")


@functools.cache
def _scratch():
    directory = tempfile.mkdtemp(prefix="ks-wheel-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


@functools.cache
def build_wheel():
    """The path of keras-switch's wheel, built from the checkout."""
    source = os.path.join(_scratch(), "source")
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    out = os.path.join(_scratch(), "dist")
    _check_call([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--wheel-dir", out, source], cwd=_scratch())
    (wheel,) = glob.glob(os.path.join(out, "keras_switch-*.whl"))
    return wheel


@functools.cache
def venv_python(extras=EXTRAS):
    """The python of a fresh venv holding `build_wheel()[extras]`."""
    wheel = build_wheel()
    venv = os.path.join(_scratch(), "venv-" + extras.replace(",", "-"))
    _check_call([sys.executable, "-m", "venv", venv], cwd=_scratch())
    python = os.path.join(venv, "bin", "python")
    _check_call([python, "-m", "pip", "install", "--quiet", f"{wheel}[{extras}]"],
                cwd=_scratch())
    return python
