"""benchmarks.modern: its summary and section on hand-made runs (paired
differences, targets marked), the layer types, the separable CNN, and a
smoke run of the binary (slow tier; the real benchmark takes hours: see its
docstring)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_switch
from benchmarks import modern
from tests.helpers import ROOT
from tests.test_case import TestCase


def run(method, seed, accuracy, target=0.9, model="vit"):
    result = {"model": model, "method": method, "target": target, "seed": seed,
              "test_accuracy": accuracy, "train_seconds": 1.0}
    if method != "dense":
        result.update(sparsity=target, sparsity_by_type={"attention": 0.8, "mlp": 0.95})
    return result


def payload():
    runs = [run("dense", 0, 0.88, None), run("dense", 1, 0.86, None),
            run("gmp", 0, 0.850), run("gmp", 1, 0.840),
            run("ks", 0, 0.851), run("ks", 1, 0.837)]
    step = {"ms": {"dense": 10.0, "ks": 12.0}, "ratio": 1.2, "switch_every": 100,
            "batch_size": 128, "rounds": 15}
    return {"runs": runs, "step_time": {"vit": step},
            "settings": {"epochs": 10, "batch_size": 128, "seeds": [0, 1],
                         "train_examples": 60000, "test_examples": 10000}}


class ReportTest(TestCase):
    def test_pairs_ks_with_gmp_and_marks_the_targets(self):
        rows = {row["method"]: row for row in modern.summary(payload()["runs"])}
        seeds, differences, mean, _ = rows["ks"]["vs_gmp"]
        self.assertEqual(seeds, [0, 1])
        self.assertAllClose(differences, [0.1, -0.3])
        self.assertAlmostEqual(mean, -0.1)
        about, text = modern.section(payload())
        self.assertIn("10 epochs, batch 128, seeds [0, 1]", about)
        self.assertIn("| vit | 90% | ks | 84.40 ± 0.99 | 90.00 | attention 80.0, mlp 95.0 | "
                      "-0.10 ± 0.20 (**met**; +0.10, -0.30) |", text)
        self.assertIn("**1.20x**, target ≤ 1.3x met", text)

    def test_layer_types(self):
        model = modern.switch_all("separable", modern.initial_weights("separable", 0))
        types = {layer.name: modern.layer_type(layer) for layer in model.switched_layers}
        self.assertEqual(types["dw1"], "depthwise")
        self.assertEqual(types["pw1"], "pointwise")
        self.assertEqual(types["conv0"], "conv")
        self.assertEqual(types["fc1"], "dense")
        vit = modern.switch_all("vit", modern.initial_weights("vit", 0))
        kinds = {modern.layer_type(layer) for layer in vit.switched_layers}
        self.assertEqual(kinds, {"attention", "mlp", "dense"})
        x = np.zeros((2, 28, 28), "float32")
        self.assertEqual(model.predict(x, verbose=0).shape, (2, 10))


# Slow tier: both models trained a few steps, ~2 minutes.
@pytest.mark.slow
class SmokeRunTest(TestCase):
    def test_the_binary_writes_results_and_the_plot(self):
        output = self.create_tempdir().full_path
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.modern", "--targets=0.9", "--seeds=0",
             "--epochs=1", "--max_train_examples=256", "--max_test_examples=128",
             "--step_rounds=1", "--window_switches=1", f"--output_dir={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(output, "results.json")) as f:
            written = json.load(f)
        self.assertEqual({(r["model"], r["method"]) for r in written["runs"]},
                         {(m, k) for m in ("vit", "separable") for k in modern.METHODS})
        for r in written["runs"]:
            if r["method"] == "ks":
                self.assertAlmostEqual(r["sparsity"], 0.9, delta=0.005)
        self.assertTrue(os.path.exists(os.path.join(output, "modern.png")))


if __name__ == "__main__":
    tf.test.main()
