"""benchmarks.inference: its masks and FC-stack model
(benchmarks.inference_models), and a quick smoke run of the binary (the
real run: BENCHMARKS.md)."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_switch
from benchmarks import inference_models
from benchmarks.harness import report
from tests.helpers import ROOT
from tests.test_case import TestCase


class MasksAndStackTest(TestCase):
    def test_global_magnitude_masks_share_one_threshold(self):
        model = inference_models.build_model("lenet300", seed=0)  # random init
        masks = inference_models.global_magnitude_masks(model, 0.95)
        kernels = [np.abs(layer.kernel.numpy()) for layer in model.switched_layers]
        total = sum(k.size for k in kernels)
        self.assertEqual(sum(int(m.sum()) for m in masks), round(0.05 * total))
        kept = np.concatenate([k[m > 0] for k, m in zip(kernels, masks)])
        pruned = np.concatenate([k[m == 0] for k, m in zip(kernels, masks)])
        self.assertGreaterEqual(kept.min(), pruned.max())
        inference_models.set_masks(model, masks)
        sparsity = keras_switch.sparsity_report(model)
        self.assertAlmostEqual(sparsity["overall"], 0.95, delta=1e-6)
        # The output layer is in the allocation (and, larger-valued, keeps more).
        self.assertLess(sparsity["layers"][2]["sparsity"], sparsity["layers"][0]["sparsity"])

    def test_fc_stack_computes_the_models_head(self):
        model = inference_models.build_model("lenet5", seed=0)
        inference_models.set_masks(model, inference_models.global_magnitude_masks(model, 0.9))
        stack = inference_models.fc_stack(model)
        inference_models.copy_switched(model, stack)
        self.assertEqual(stack.inputs[0].shape[1], 400)
        features = keras.Model(model.input, model.get_layer("fc1").input)
        x = np.random.default_rng(0).random((4, 28, 28), dtype="float32")
        self.assertAllClose(stack(features(x)), model(x), atol=1e-5)
        self.assertAlmostEqual(
            keras_switch.sparsity_report(stack)["overall"], 0.9, delta=1e-6)


class InferenceBinaryTest(TestCase):
    # A whole benchmark run on tiny data: slow tier (docs/testing.md, "What is tested where").
    @pytest.mark.slow
    def test_smoke_run_writes_json_and_its_markdown_section(self):
        tmp = self.create_tempdir().full_path
        output = os.path.join(tmp, "inference.json")
        markdown = os.path.join(tmp, "BENCHMARKS.md")
        shutil.copy(report.BENCHMARKS_MD, markdown)
        with open(markdown) as f:
            before = f.read()
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.inference", "--models=lenet300",
             "--targets=0.95", "--batch_sizes=1", "--rounds=2", "--warmup=1",
             "--window_ms=1", "--unroll=2", "--train_epochs=0",
             f"--output={output}", "--markdown", f"--benchmarks_md={markdown}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(output) as f:
            payload = json.load(f)
        (measured,) = payload["results"]
        self.assertEqual((measured["model"], measured["part"]), ("lenet300", "fc=whole"))
        self.assertAlmostEqual(measured["fc_sparsity"], 0.95, delta=1e-6)
        self.assertEqual([l["name"] for l in measured["auto_layers"]], ["fc1", "fc2", "fc3"])
        for name in ("dense", "auto", "sparse_matmul", "gather", "tflite_dense",
                     "tflite_sparse"):
            self.assertGreater(measured["sizes"][name], 0)
        for name in ("auto", "sparse_matmul", "gather"):
            self.assertGreater(measured["size_ratio"][name], 0.0)
            self.assertLess(measured["max_abs_diff"][name], 1e-3)
        modes = {t["mode"]: t for t in measured["latency"]}
        self.assertEqual(set(modes), {"graph", "call", "tflite"})
        for name in ("auto", "sparse_matmul", "gather"):
            self.assertGreater(modes["call"]["ratio"][name], 0.0)
            self.assertIn(name, modes["graph"]["ratio"])
        self.assertGreater(modes["tflite"]["ratio"]["sparse"], 0.0)
        # 5 targets, the TFLite route at batch 1 (256 not timed) and the
        # Python-call line.
        self.assertEqual(len(payload["targets"]), 7)
        tflite = [t for t in payload["targets"] if "TFLite" in t["name"]]
        self.assertLen(tflite, 1)
        self.assertIn("batch 1", tflite[0]["name"])
        self.assertRegex(tflite[0]["detail"], r"^LeNet-300-100 \d+\.\d\dx; \d+\.\d\dx$")
        with open(markdown) as f:
            after = f.read()
        head = before.split("<!-- inference:begin")[0]
        self.assertTrue(after.startswith(head))
        self.assertIn("Command: `python -m benchmarks.inference --models=lenet300", after)
        self.assertIn("| LeNet-300-100 | FC stack = whole | 0.95 | 0.9500 (", after)
        self.assertIn("**Targets (issue 5)", after)


if __name__ == "__main__":
    tf.test.main()
