"""benchmarks.determinism, as a quick smoke run (the real one: BENCHMARKS.md)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers import ROOT
from tests.helpers import write_learnable_split
from tests.test_case import TestCase


# Slow tier (docs/testing.md, "What is tested where"): a whole benchmark run, ~30 s.
@pytest.mark.slow
class DeterminismBenchmarkTest(TestCase):
    def test_times_both_settings_and_writes_json(self):
        data_dir = self.create_tempdir().full_path
        write_learnable_split(data_dir, n_train=256, n_test=64)
        output = os.path.join(self.create_tempdir().full_path, "determinism.json")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.determinism", "--models=lenet300",
             "--rounds=1", f"--data_dir={data_dir}", f"--output={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertRegex(result.stdout, r"lenet300 round 1/1 deterministic: [\d.]+ s")
        self.assertRegex(result.stdout, r"lenet300 round 1/1 default: [\d.]+ s")
        self.assertRegex(result.stdout, r"\| lenet300 \| 3 \| 1 \| [\d.]+ \| [\d.]+ \| \*\*[\d.]+x\*\* \| yes / yes \|")
        with open(output) as f:
            (measured,) = json.load(f)["results"]
        for setting in ("deterministic", "default"):
            (seconds,) = measured["train_seconds"][setting]
            self.assertGreater(seconds, 0.0)
        self.assertAlmostEqual(
            measured["ratio"],
            measured["train_seconds"]["deterministic"][0] / measured["train_seconds"]["default"][0])

    def test_rejects_zero_rounds(self):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.determinism", "--rounds=0"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--rounds must be at least 1. Received: 0", result.stderr)


if __name__ == "__main__":
    tf.test.main()
