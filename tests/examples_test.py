import contextlib
import io
import os
import sys

import tensorflow as tf

from tests.data_test import _write_split
from tests.test_case import TestCase

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import fashion_mnist_demo  # noqa: E402


class DemoTest(TestCase):
    def test_runs_on_small_mnist_format_files(self):
        directory = self.create_tempdir().full_path
        _write_split(directory, n_train=64, n_test=16)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = fashion_mnist_demo.main(
                ["--data-dir", directory, "--epochs", "2", "--batch-size", "32"]
            )
        self.assertEqual(code, 0)
        self.assertIn("test accuracy", out.getvalue())
        self.assertIn("overall FC sparsity 0.9", out.getvalue())

    def test_missing_data_is_a_clear_error(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = fashion_mnist_demo.main(["--data-dir", self.create_tempdir().full_path])
        self.assertEqual(code, 2)
        self.assertIn("dataset-fashion-mnist", err.getvalue())


if __name__ == "__main__":
    tf.test.main()
