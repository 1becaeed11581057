"""Every ```python block of README.md runs as written: pasted into a fresh
interpreter (here: `python -` in a subprocess, with the checkout on
PYTHONPATH and a scratch working directory for the files a block writes).
A block that cannot run says so on its first line: `# not run: <why>`."""

import os
import re
import subprocess
import sys
import tempfile

import tensorflow as tf
from absl.testing import parameterized

from tests.helpers import ROOT
from tests.test_case import TestCase

NOT_RUN = "# not run:"


def python_blocks(path=os.path.join(ROOT, "README.md")):
    """[(line number, code)] of the ```python blocks of `path`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
    ]


class ReadmeTest(TestCase, parameterized.TestCase):
    def test_readme_has_python_blocks(self):
        runnable = [code for _, code in python_blocks() if not code.startswith(NOT_RUN)]
        self.assertNotEmpty(runnable)

    @parameterized.parameters(python_blocks())
    def test_block_runs(self, line, code):
        if code.startswith(NOT_RUN):
            self.skipTest(f"README.md line {line}: {code.splitlines()[0]}")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        with tempfile.TemporaryDirectory() as scratch:
            result = subprocess.run(
                [sys.executable, "-"], input=code, cwd=scratch, env=env,
                capture_output=True, text=True, timeout=600,
            )
        self.assertEqual(
            result.returncode, 0,
            f"README.md line {line}: the block failed:\n{result.stderr[-3000:]}",
        )


if __name__ == "__main__":
    tf.test.main()
