"""benchmarks.step_time, as a quick smoke run (the real one: BENCHMARKS.md)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.helpers import ROOT
from tests.test_case import TestCase


# Slow tier (docs/testing.md, "What is tested where"): a whole benchmark run, ~30 s.
@pytest.mark.slow
class StepTimeTest(TestCase):
    def test_prints_ratios_and_writes_json(self):
        output = os.path.join(self.create_tempdir().full_path, "step_time.json")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_time", "--models=lenet300",
             "--rounds=1", "--window_switches=1", "--notfmot", "--memory_steps=3",
             f"--output={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertRegex(result.stdout, r"lenet300: dense [\d.]+ ms, keras-switch switching")
        with open(output) as f:
            (measured,) = json.load(f)["results"]
        self.assertEqual(measured["switch_every"], 100)
        for key in ("dense", "ks_switching", "ks_frozen"):
            self.assertGreater(measured["ms_per_step"][key], 0.0)
        self.assertGreater(measured["ratio_switching"], 0.0)
        self.assertGreater(measured["memory"]["peak_rss_mib"]["ks"], 50.0)


# Slow tier: the sweep's binary on a tiny layer, ~20 s.
@pytest.mark.slow
class ScaleSweepTest(TestCase):
    def test_a_small_sweep_writes_ratios_and_bytes_per_weight(self):
        output = os.path.join(self.create_tempdir().full_path, "scale.json")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_time", "--scale_sweep",
             "--scale_widths=32", "--scale_steps=2", "--batch_size=8", f"--output={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertRegex(result.stdout, r"width 32 \(0\.0M weights\): dense [\d.]+ ms")
        with open(output) as f:
            (measured,) = json.load(f)["results"]
        self.assertEqual(measured["switched_weights"], 32 * 32)
        for mode in ("dense", "switch", "recipe"):
            self.assertGreater(measured["ms_per_step"][mode], 0.0)
            self.assertGreater(measured["peak_rss_mib"][mode], 50.0)
        self.assertEqual(set(measured["bytes_per_switched_weight"]), {"switch", "recipe"})
        self.assertIn("| switched weights |", result.stdout)


# Slow tier: ~3 minutes and ~8 GB.
@pytest.mark.slow
class HundredMillionWeightsTest(TestCase):
    def test_a_layer_of_100m_switched_weights_trains_in_bounded_memory(self):
        width = 10016  # 100.3M switched weights
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_time", f"--scale_child=switch,{width}",
             "--scale_steps=3", "--batch_size=128"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertLen(measured["ms"], 3)  # and two warm-up steps, all switch steps
        self.assertAlmostEqual(measured["sparsity"], 0.9, delta=0.001)
        # Dense's ~16 bytes per weight (kernel, gradient, Adam's two slots)
        # and the switcher's extra stay far below the 24 GB machine.
        self.assertLess(measured["peak_rss_mib"], 16 * 1024)


if __name__ == "__main__":
    tf.test.main()
