"""benchmarks.allocation: the split arithmetic, bad flags, and a smoke run
on generated data."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from benchmarks import allocation
from tests.helpers import ROOT
from tests.helpers import idx_data_dir
from tests.test_case import TestCase

SIZES = {"fc1": 784 * 300, "fc2": 300 * 100, "fc3": 100 * 10}


def _run(args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.allocation", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


class SplitTest(TestCase):
    def test_first_layer_takes_the_rest_of_the_budget(self):
        rest = {"fc2": 0.94, "fc3": 0.55}
        first = allocation.first_layer_sparsity(SIZES, 0.98, rest)
        kept = ((1 - first) * SIZES["fc1"] + 0.06 * SIZES["fc2"] + 0.45 * SIZES["fc3"])
        self.assertAlmostEqual(kept, 0.02 * sum(SIZES.values()), places=6)
        self.assertAlmostEqual(first, 1 - 3074 / 235200, places=6)  # 5324 - 1800 - 450 kept

    def test_unreachable_split_raises(self):
        # fc2 and fc3 kept whole hold more than 2% of all connections.
        with self.assertRaisesRegex(ValueError, r"cannot reach overall sparsity 0\.98"):
            allocation.first_layer_sparsity(SIZES, 0.98, {"fc2": 0.0, "fc3": 0.0})


class AllocationRunTest(TestCase):
    # Slow tier: four benchmark processes, ~20 s.
    @pytest.mark.slow
    def test_bad_split_flags_exit_with_the_value(self):
        cases = {
            "0.0:0.0": "cannot reach overall sparsity 0.98",
            "0.9": "expected 2 sparsities in [0, 1) joined by ':' (fc2:fc3)",
            "0.9:x": "expected 2 sparsities",
            "0.9:1.0": "expected 2 sparsities",
        }
        for split, message in cases.items():
            with self.subTest(split=split):
                result = _run([f"--splits={split}"])
                self.assertEqual(result.returncode, 1)
                self.assertIn(f"--splits entry '{split}'", result.stderr)
                self.assertIn(message, result.stderr)

    # A whole benchmark run on tiny data: slow tier (docs/testing.md, "What is tested where").
    @pytest.mark.slow
    def test_smoke_run_reaches_the_asked_sparsities(self):
        data_dir = idx_data_dir(self, n_train=640, n_test=40)
        output = os.path.join(self.create_tempdir().full_path, "allocation.json")
        result = _run(["--target=0.9", "--splits=0.8:0.3", "--intervals=4",
                       "--switch_every=4", "--seeds=0", "--epochs=10",
                       f"--data_dir={data_dir}", f"--output={output}"])
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("| global | – |", result.stdout)
        with open(output) as f:
            payload = json.load(f)
        rows = payload["results"]
        self.assertEqual([r["mask"] for r in rows], ["global", "split"])
        for row in rows:
            self.assertAlmostEqual(row["fc_sparsity"], 0.9, places=3)
            self.assertLen(row["accuracy"], 1)
        split = rows[1]
        for name, asked in split["asked"].items():
            self.assertAlmostEqual(split["layer_sparsity"][name], asked, places=2)
        self.assertAlmostEqual(split["asked"]["fc2"], 0.8)


if __name__ == "__main__":
    tf.test.main()
