"""benchmarks.pretrained: its report (benchmarks.pretrained_report:
aggregation, paired differences, issue 19's targets, the tables) on
hand-made runs, the masked convolution it prunes with, its plan, and one
tiny keras-switch prune of a "pretrained" LeNet-5 (the real
benchmark takes ~40 minutes: see its docstring)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import pretrained
from benchmarks import pretrained_report
from benchmarks.harness import baselines
from benchmarks.harness import measure
from benchmarks.harness import report
from benchmarks.harness import sparsity
from tests.test_case import TestCase

LAYERS = {"conv1": 0.5, "conv2": 0.9, "fc1": 0.97, "fc2": 0.9, "fc3": 0.6}


def run(method, seed, accuracy, target=0.95, sparsity=0.95, seconds=10.0):
    return {"method": method, "target": target, "seed": seed, "test_accuracy": accuracy,
            "sparsity": sparsity, "layer_sparsity": dict(LAYERS), "train_seconds": seconds}


def runs():
    return [
        run("dense", 0, 0.900, target=None, sparsity=0.0),
        run("dense", 1, 0.904, target=None, sparsity=0.0),
        run("ks", 0, 0.890), run("ks", 1, 0.880),
        run("tfmot", 0, 0.880), run("tfmot", 1, 0.866),
        run("gmp_global", 0, 0.8905), run("gmp_global", 1, 0.8805),
        run("ks_scratch", 0, 0.870),
        run("ks", 0, 0.895, target=0.9, sparsity=0.9),
    ]


EXPORTS = [{"target": 0.95, "seed": 0, "sparse_bytes": 7000, "dense_once_bytes": 100000,
            "dense_saved_model_bytes": 200000, "weights_bytes": 95000, "ratio": 0.07,
            "ratio_to_saved_model": 0.035, "layers": []}]
STEP_TIME = {"ms": {"dense": 4.0, "ks_switching": 5.6, "ks_frozen": 4.4, "ks_library": 6.0},
             "ratio": {"ks_switching": 1.4, "ks_frozen": 1.1, "ks_library": 1.5},
             "switch_every": 100, "library_switch_every": 58, "window_steps": 400,
             "rounds": 15, "batch_size": 128}
SETTINGS = {"seeds": [0, 1], "pretrain_epochs": 10, "epochs": 5, "scratch_epochs": 10,
            "train_examples": 60000, "test_examples": 10000,
            "plan": {"steps": 2345, "freeze_step": 1876, "switch_every": 58,
                     "tfmot_end_step": 1876, "tfmot_frequency": 100}}


class ReportTest(TestCase):
    def test_aggregate_means_and_sd_over_seeds_in_method_order(self):
        rows = pretrained_report.aggregate(runs())
        self.assertEqual([(r["method"], r["target"]) for r in rows],
                         [("dense", None), ("ks", 0.9), ("ks", 0.95), ("tfmot", 0.95),
                          ("gmp_global", 0.95), ("ks_scratch", 0.95)])
        ks = rows[2]
        self.assertEqual(ks["seeds"], [0, 1])
        self.assertAlmostEqual(ks["mean_accuracy"], 0.885)
        self.assertAlmostEqual(ks["sd_accuracy"], np.std([0.89, 0.88], ddof=1))
        self.assertEqual(ks["layer_sparsity"], LAYERS)
        self.assertTrue(np.isnan(rows[-1]["sd_accuracy"]))  # one seed

    def test_paired_differences_and_their_standard_error(self):
        seeds, diffs, mean, error = pretrained_report.paired(runs(), "tfmot", 0.95)
        self.assertEqual(seeds, [0, 1])
        self.assertAllClose(diffs, [1.0, 1.4])
        self.assertAlmostEqual(mean, 1.2)
        self.assertAlmostEqual(error, 0.2)  # stdev 0.283 / sqrt(2)
        seeds, _, mean, _ = pretrained_report.paired(runs(), "ks_scratch", 0.95)
        self.assertEqual(seeds, [0])

    def test_targets_met_missed_and_not_measured(self):
        vs_tfmot, vs_gmp, size, step = pretrained_report.check_targets(runs(), EXPORTS, STEP_TIME)
        self.assertAlmostEqual(vs_tfmot["measured"], 1.2)
        self.assertTrue(vs_tfmot["met"])  # +1.2 >= +0.5
        self.assertAlmostEqual(vs_gmp["measured"], -0.05)
        self.assertTrue(vs_gmp["met"])  # -0.05 >= -0.1
        self.assertTrue(size["met"])  # 0.07 <= 0.08
        self.assertFalse(step["met"])  # 1.4 > 1.3
        missing = pretrained_report.check_targets([r for r in runs() if r["method"] != "tfmot"],
                                           [], None)
        self.assertIsNone(missing[0]["met"])
        self.assertEqual([c["met"] for c in missing[2:]], [None, None])

    def test_render_and_publish(self):
        output_dir = self.create_tempdir().full_path
        md = os.path.join(output_dir, "BENCHMARKS.md")
        with open(md, "w") as f:
            f.write("intro\n<!-- pretrained:begin -->\nold\n<!-- pretrained:end -->\noutro\n")
        original, report.BENCHMARKS_MD = report.BENCHMARKS_MD, md
        try:
            payload = pretrained_report.write(runs(), EXPORTS, STEP_TIME, SETTINGS, output_dir,
                                       markdown=True, command="python -m benchmarks.pretrained")
        finally:
            report.BENCHMARKS_MD = original
        with open(md) as f:
            text = f.read()
        self.assertNotIn("\nold\n", text)
        self.assertIn("A pruning run is 2,345 steps: the target ramps in (cubic) until step "
                      "1,876 (TFMOT: 1,876), then the mask is fixed; masks are updated every 58 "
                      "steps (ks, gmp_global; the interval `fit()` plans) or 100 (tfmot).", text)
        self.assertIn("| ks | 0.95 | 2 | 0.8900 / 0.8800 | **0.8850** ± 0.0071 | 0.9500 "
                      "| 50.0/90.0/97.0/90.0/60.0 | 10 |", text)
        self.assertIn("| 0.95 | +1.00 / +1.40 | **+1.20 ± 0.20** | -0.05 / -0.05 "
                      "| **-0.05 ± 0.00** | +2.00 | **+2.00** |", text)
        self.assertIn("| 0.95 | 0 | 7,000 | 100,000 | **0.070x** | 200,000 | 0.035x |", text)
        self.assertIn("| 4.00 | 5.60 (**1.40x**) | 4.40 (1.10x) | 6.00 (1.50x) | 100 / 58 "
                      "| 400 | 15 |", text)
        self.assertIn("| ks − tfmot ≥ +0.5 pt at 95% | +1.20 ± 0.20 | yes |", text)
        self.assertIn("| step every layer switched ≤ 1.3x Dense | 1.400x | **no** |", text)
        with open(os.path.join(output_dir, "results.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["command"], "python -m benchmarks.pretrained")
        self.assertEqual(len(saved["summary"]), len(payload["summary"]))
        self.assertGreater(os.path.getsize(os.path.join(output_dir, "pretrained.png")), 1000)
        # The section is made from the JSON alone.
        self.assertEqual(pretrained_report.render(saved), pretrained_report.render(payload))


class PruningPiecesTest(TestCase):
    def test_masked_conv_zeroes_output_and_gradient_of_masked_weights(self):
        layer = baselines.MaskedConv2D(2, 3, use_bias=False)
        x = np.random.default_rng(0).normal(size=(1, 5, 5, 1)).astype("float32")
        layer(x)
        mask = np.ones((3, 3, 1, 2), "float32")
        mask[..., 1] = 0.0
        layer.mask.assign(mask)
        with tf.GradientTape() as tape:
            out = layer(x)
            loss = tf.reduce_sum(out)
        grad = tape.gradient(loss, layer.kernel).numpy()
        self.assertAllEqual(out.numpy()[..., 1], np.zeros((1, 3, 3)))
        self.assertAllEqual(grad[..., 1], np.zeros((3, 3, 1)))
        self.assertGreater(np.abs(grad[..., 0]).sum(), 0)

    def test_masked_lenet5_takes_the_initial_weights_and_reports_every_kernel(self):
        init = baselines.initial_weights("lenet5", seed=0)
        model = pretrained.plain_lenet5(init, masked=True)
        model.get_layer("conv1").mask.assign(np.zeros((5, 5, 1, 6), "float32"))
        kernels = measure.kernels_of(model)
        self.assertEqual(list(kernels), list(pretrained.LAYERS))
        measured = sparsity.sparsities(kernels)
        self.assertEqual(measured["layer_sparsity"]["conv1"], 1.0)
        self.assertEqual(measured["layer_sparsity"]["fc1"], 0.0)
        total = sum(k.size for k in kernels.values())
        self.assertAlmostEqual(measured["sparsity"], 150 / total)
        self.assertAllEqual(kernels["fc2"], init[6])

    def test_gmp_and_tfmot_plans_follow_the_library_plan(self):
        # 5 epochs of 469 steps: the mask freezes at 80%, a switch step
        # often enough for 32 of them before.
        self.assertEqual(pretrained.library_plan(2345), (1876, 58))
        self.assertEqual(pretrained.pruning_plan(60000, 5, 128, 100),
                         {"steps": 2345, "freeze_step": 1876, "switch_every": 58,
                          "tfmot_end_step": 1876, "tfmot_frequency": 100})
        # A smoke run shorter than TFMOT's frequency still prunes.
        self.assertEqual(pretrained.pruning_plan(512, 1, 128, 100)["tfmot_frequency"], 3)


# Slow tier (docs/testing.md, "What is tested where"): ~20 s.
@pytest.mark.slow
class TinyPruneTest(TestCase):
    def test_ks_prunes_every_layer_of_a_pretrained_model(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(384, 28, 28)).astype("float32")
        y = rng.integers(0, 10, 384)
        data = (x[:256], y[:256]), (x[256:], y[256:])
        weights = baselines.initial_weights("lenet5", seed=0)
        result = pretrained.prune_ks(weights, data, 0.9, 0, epochs=2, batch_size=32,
                                     export_dir=self.create_tempdir().full_path)
        self.assertAlmostEqual(result["sparsity"], 0.9, delta=0.002)
        self.assertEqual(set(result["layer_sparsity"]), set(pretrained.LAYERS))
        self.assertTrue(all(v > 0 for v in result["layer_sparsity"].values()))
        self.assertEqual(result["freeze_step"], 13)  # 80% of 16 steps
        export = result["export"]
        self.assertLess(export["sparse_bytes"], export["dense_once_bytes"])
        self.assertAlmostEqual(export["ratio"],
                               export["sparse_bytes"] / export["dense_once_bytes"])
        self.assertEqual([l["name"] for l in export["layers"]], list(pretrained.LAYERS))
        keras.utils.clear_session()


if __name__ == "__main__":
    tf.test.main()
