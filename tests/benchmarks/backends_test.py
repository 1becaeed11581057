"""benchmarks.backends: the summary (paired by seed, targets marked), bad
flags, and (slow tier) a smoke run on generated data."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import backends
from tests.helpers import ROOT
from tests.helpers import idx_data_dir
from tests.test_case import TestCase


def _run(args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "benchmarks.backends", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def _worker(accuracies, ratio):
    runs = [{"target": 0.95, "seed": seed, "test_accuracy": accuracy, "fc_sparsity": 0.95,
             "epoch_seconds": [9.0, 2.0, 3.0, 4.0]}
            for seed, accuracy in enumerate(accuracies)]
    return {"runs": runs, "step_time": {"ms": {"dense": 2.0, "ks": 2.0 * ratio},
                                        "ratio": {"ks": ratio}}}


class SummaryTest(TestCase):
    def test_pairs_by_seed_and_marks_the_targets(self):
        workers = {"tensorflow": _worker([0.880, 0.885, 0.890], 1.10),
                   "jax": _worker([0.881, 0.880, 0.897], 1.30)}
        summary = backends.summarise(workers, [0.95])
        [row] = summary["accuracy"]
        paired = row["jax_minus_tensorflow"]
        self.assertEqual(paired["seeds"], [0, 1, 2])
        self.assertAllClose(paired["differences"], [0.1, -0.5, 0.7])
        self.assertAlmostEqual(paired["mean"], 0.1)
        self.assertTrue(paired["met"])
        self.assertAlmostEqual(row["jax"]["accuracy"], (0.881 + 0.880 + 0.897) / 3)
        self.assertTrue(summary["backends"]["tensorflow"]["step_ratio_met"])
        self.assertFalse(summary["backends"]["jax"]["step_ratio_met"])
        self.assertEqual(summary["backends"]["jax"]["epoch_seconds"], 3.0)  # the first left out
        workers["jax"] = _worker([0.881, 0.880, 0.910], 1.0)
        self.assertFalse(backends.summarise(workers, [0.95])["accuracy"][0]["jax_minus_tensorflow"]["met"])
        about, table = backends.section({"backends": ["tensorflow", "jax"], "seeds": [0, 1, 2],
                                        "epochs": 10, "summary": summary})
        self.assertIn("+0.10 ± 0.35 (met)", table)
        self.assertIn("| jax | 2.00 | 2.60 | 1.30x (missed) | 3.0 |", table)


class FlagsTest(TestCase):
    def test_an_unknown_backend_is_refused(self):
        done = _run(["--backends=numpy", f"--output_dir={self.create_tempdir().full_path}"])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("--backends: unknown ['numpy']", done.stderr)


@pytest.mark.slow
class SmokeTest(TestCase):
    def test_a_small_run_on_both_backends(self):
        data_dir = idx_data_dir(self, n_train=512, n_test=128)
        output = self.create_tempdir().full_path
        done = _run([f"--data_dir={data_dir}", "--seeds=0", "--targets=0.9", "--epochs=2",
                     "--rounds=1", "--window_switches=1", f"--output_dir={output}"])
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        with open(os.path.join(output, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(set(results["workers"]), {"tensorflow", "jax"})
        for worker in results["workers"].values():
            [run] = worker["runs"]
            self.assertAlmostEqual(run["fc_sparsity"], 0.9, delta=0.005)
            self.assertLen(run["epoch_seconds"], 2)
