"""benchmarks.mask_stability, as a quick smoke run on generated data."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers import ROOT
from tests.helpers import idx_data_dir
from tests.test_case import TestCase

LENET300_CONNECTIONS = 784 * 300 + 300 * 100 + 100 * 10


class MaskStabilityTest(TestCase):
    # A whole benchmark run on tiny data: slow tier (docs/testing.md, "What is tested where").
    @pytest.mark.slow
    def test_counts_every_switch_step_and_balance(self):
        data_dir = idx_data_dir(self, n_train=640, n_test=40)
        output = os.path.join(self.create_tempdir().full_path, "flips.json")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.mask_stability", "--targets=0.9",
             "--epochs=10", "--switch_every=4", f"--data_dir={data_dir}",
             f"--output={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("| lenet300 | 0.90 | 0 |", result.stdout)
        with open(output) as f:
            (row,) = json.load(f)["results"]
        # 5 steps per epoch; the recipe ramps over 8 epochs and freezes the
        # last 2: switch steps at 3, 7, ..., 39, plus steps 0 and 40 (the
        # freeze step), whose task steps take their masks from the switcher.
        self.assertEqual(row["mask_updates"], 12)
        self.assertEqual([u[0] for u in row["updates"]],
                         [0] + list(range(3, 40, 4)) + [40])
        # Every switch starts on: what is off at the end was switched off
        # once more than it was switched back on.
        self.assertEqual(row["switched_off_total"] - row["revived_total"],
                         LENET300_CONNECTIONS - row["kept_final"])
        # The bisection's last interval (range / 2**24) may hold a near-tie.
        self.assertAlmostEqual(row["kept_final"], round(0.1 * LENET300_CONNECTIONS), delta=2)
        self.assertAlmostEqual(row["fc_sparsity"], 0.9, places=3)


if __name__ == "__main__":
    tf.test.main()
