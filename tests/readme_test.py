"""README.md's ```python blocks run as written: in order, in one fresh
interpreter, as a reader pastes them top to bottom (here: a subprocess with
the checkout on PYTHONPATH, a scratch working directory for the files the
blocks write, and Keras' dataset cache pointed at Debian's Fashion-MNIST
files, so that `keras.datasets.fashion_mnist.load_data()` runs offline).
A block that cannot run says so on its first line: `# not run: <why>`.
tests/docs_test.py runs the pages of docs/ the same way."""

import json
import re
import os
import subprocess
import sys
import tempfile
import textwrap

import tensorflow as tf

from tests.helpers import ROOT
from tests.test_case import TestCase

NOT_RUN = "# not run:"
README = os.path.join(ROOT, "README.md")
# Debian's dataset-fashion-mnist package (`make data` installs it): the same
# gzipped IDX files Keras downloads, under the names Keras caches them by.
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# Execs each block with the file's own line numbers, so that a traceback
# names the markdown file and the line in it.
_RUNNER = textwrap.dedent("""\
    import json, sys
    namespace = {"__name__": "__main__"}
    for name, line, code in json.load(open(sys.argv[1])):
        exec(compile("\\n" * line + code, name, "exec"), namespace)
""")


def python_blocks(path=README):
    """[(line number of the opening fence, code)] of the ```python blocks of
    `path`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
    ]


def runnable_blocks(path=README):
    """`python_blocks(path)` less those that start with `# not run:`."""
    return [(line, code) for line, code in python_blocks(path) if not code.startswith(NOT_RUN)]


def keras_home(directory):
    """Makes `directory` a Keras home whose dataset cache holds Fashion-MNIST
    (links to the Debian files); returns it."""
    cache = os.path.join(directory, "datasets", "fashion-mnist")
    os.makedirs(cache, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        os.symlink(os.path.join(FASHION_MNIST, name), os.path.join(cache, name))
    return directory


def run_page(path, timeout=600, python=None):
    """Runs the runnable blocks of the markdown file `path` in order in one
    fresh interpreter: this one's with the checkout on PYTHONPATH, or
    `python` (an installed keras-switch's, e.g. `tests.wheel_env`) without
    it; returns the `subprocess.CompletedProcess`."""
    name = os.path.relpath(path, ROOT)
    with tempfile.TemporaryDirectory() as scratch:
        blocks = os.path.join(scratch, "blocks.json")
        with open(blocks, "w") as f:
            json.dump([(name, line, code) for line, code in runnable_blocks(path)], f)
        work = os.path.join(scratch, "work")
        os.makedirs(work)
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   KERAS_HOME=keras_home(os.path.join(scratch, "keras")))
        if python is not None:
            del env["PYTHONPATH"]
        return subprocess.run([python or sys.executable, "-c", _RUNNER, blocks], cwd=work,
                              env=env, capture_output=True, text=True, timeout=timeout)


class PageTestCase(TestCase):
    def assertPageRuns(self, path, python=None):
        if not all(os.path.exists(os.path.join(FASHION_MNIST, f)) for f in FASHION_MNIST_FILES):
            self.skipTest(f"needs Fashion-MNIST in {FASHION_MNIST} (make data)")
        result = run_page(path, python=python)
        self.assertEqual(
            result.returncode, 0,
            f"{os.path.relpath(path, ROOT)}: a block failed:\n{result.stderr[-3000:]}")


class ReadmeTest(PageTestCase):
    def test_readme_has_python_blocks(self):
        self.assertNotEmpty(runnable_blocks())

    def test_blocks_run_in_order(self):
        self.assertPageRuns(README)


if __name__ == "__main__":
    tf.test.main()
