"""benchmarks.pareto, its baselines and runs (benchmarks.harness) and report,
on small generated data (the real benchmark takes hours: see BENCHMARKS.md)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import pareto_report
from benchmarks.harness import baselines
from benchmarks.harness import report
from benchmarks.harness import runs as bench_runs
from tests.helpers import ROOT
from tests.helpers import idx_data_dir
from tests.test_case import TestCase


def masked_layers(shapes, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for index, (fan_in, units) in enumerate(shapes):
        layer = baselines.MaskedDense(units, name=f"fc{index + 1}")
        layer.build((None, fan_in))
        layer.kernel.assign(rng.normal(size=(fan_in, units)) * (index + 1))
        layers.append(layer)
    return layers


def run_pruning(callback, steps):
    masks = []
    for _ in range(steps):
        callback.on_train_batch_begin(0)
        masks.append([np.array(layer.mask.numpy()) for layer in callback.layers])
    return masks


class GradualPruningTest(TestCase):
    def test_global_magnitude_reaches_the_target_and_never_regrows(self):
        layers = masked_layers([(40, 30), (30, 10)])
        callback = baselines.GradualPruning(layers, "magnitude", "global", 0.9,
                                         ramp_steps=20, every=5)
        masks = run_pruning(callback, 30)
        final = masks[-1]
        on = sum(m.sum() for m in final)
        self.assertEqual(on, round(0.1 * (40 * 30 + 30 * 10)))
        for before, after in zip(masks, masks[1:]):
            for b, a in zip(before, after):
                self.assertTrue(np.all(a <= b))  # pruned stays pruned
        # Global magnitude: every kept |w| >= every pruned |w| (the second
        # layer's larger weights keep it denser).
        kept = np.concatenate([np.abs(l.kernel.numpy())[m > 0] for l, m in zip(layers, final)])
        pruned = np.concatenate([np.abs(l.kernel.numpy())[m == 0] for l, m in zip(layers, final)])
        self.assertGreaterEqual(kept.min(), pruned.max())
        self.assertLess(1 - final[1].mean(), 1 - final[0].mean())

    def test_per_layer_allocation_and_random_control(self):
        layers = masked_layers([(40, 30), (30, 10)])
        allocation = {"fc1": 0.95, "fc2": 0.5}
        callback = baselines.GradualPruning(layers, "random", allocation, None,
                                         ramp_steps=10, every=1, seed=3)
        final = run_pruning(callback, 12)[-1]
        self.assertEqual(final[0].sum(), round(0.05 * 1200))
        self.assertEqual(final[1].sum(), round(0.5 * 300))
        # Random scores: the kept set is not the top-magnitude one.
        kernel = np.abs(layers[0].kernel.numpy())
        self.assertLess(kernel[final[0] > 0].mean(), np.sort(kernel.ravel())[-60:].mean())


class RecipeTest(TestCase):
    def test_recipe_is_the_trainer_default_with_overrides(self):
        config = bench_runs.recipe("lenet300", 0.95, seed=1, epochs=10,
                               overrides={"switch_optimizer.learning_rate": 0.0})
        self.assertEqual(config.target_sparsity, 0.95)
        self.assertEqual(config.seed, 1)
        self.assertEqual(config.switch_optimizer.learning_rate, 0.0)
        with self.assertRaisesRegex(ValueError, "freeze_epochs"):
            bench_runs.recipe("lenet300", 0.9, seed=0, epochs=1)

    def test_same_initial_weights_for_every_method(self):
        init = baselines.initial_weights("lenet5", seed=4)
        plain = baselines.plain_model("lenet5", masked=True)
        baselines.set_initial_weights(plain, init)
        from trainers import train_lib

        switched = train_lib.build_model(bench_runs.recipe("lenet5", 0.9, 0, 10), (28, 28))
        baselines.set_initial_weights(switched, init)
        for name in baselines.FC_LAYERS:
            self.assertAllEqual(plain.get_layer(name).kernel, switched.get_layer(name).kernel)
        self.assertAllEqual(init[0], baselines.initial_weights("lenet5", seed=4)[0])


# Slow tier (docs/testing.md, "What is tested where"): a whole benchmark run, ~30 s.
@pytest.mark.slow
class ParetoBinaryTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = idx_data_dir(cls, n_train=256, n_test=64)

    def _run(self, output_dir, *extra):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        return subprocess.run(
            [sys.executable, "-m", "benchmarks.pareto", "--models=lenet300",
             "--targets=0.9", "--seeds=0", "--epochs=3", "--batch_size=64",
             "--switch_every=1",
             "--methods=dense,gmp_global,ks,gmp_at_ks,random_at_ks",
             f"--data_dir={self.data_dir}", f"--output_dir={output_dir}", *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )

    def test_runs_every_method_and_resumes(self):
        output_dir = self.create_tempdir().full_path
        first = self._run(output_dir, "--variants=ks_prior_only")
        self.assertEqual(first.returncode, 0, first.stderr[-3000:])
        with open(os.path.join(output_dir, "results.json")) as f:
            results = json.load(f)
        runs = {r["method"]: r for r in results["runs"] if r["target"] is not None}
        self.assertEqual(
            set(runs), {"gmp_global", "ks", "ks_prior_only", "gmp_at_ks", "random_at_ks"})
        untargeted = {r["method"]: r for r in results["runs"] if r["target"] is None}
        self.assertEqual(set(untargeted), {"dense", "ks"})
        # The pure task objective switches (almost) nothing off.
        self.assertLess(untargeted["ks"]["fc_sparsity"], 0.05)
        self.assertEqual(untargeted["dense"]["fc_sparsity"], 0.0)
        for method in ("gmp_global", "ks", "ks_prior_only"):
            self.assertAlmostEqual(runs[method]["fc_sparsity"], 0.9, delta=0.002)
        for method in ("gmp_at_ks", "random_at_ks"):
            for name, value in runs["ks"]["layer_sparsity"].items():
                self.assertAlmostEqual(runs[method]["layer_sparsity"][name], value, delta=0.01)
        overlap = runs["ks"]["top_magnitude_overlap"]
        self.assertEqual(set(overlap), set(baselines.FC_LAYERS))
        self.assertTrue(all(0.0 <= v <= 1.0 for v in overlap.values()))
        self.assertTrue(os.path.getsize(os.path.join(output_dir, "pareto.png")) > 1000)
        with open(os.path.join(output_dir, "pareto.md")) as f:
            self.assertIn("| LeNet-300-100 | gmp_global | 0.90 |", f.read())
        # A second run reuses every run's JSON: nothing is trained again.
        second = self._run(output_dir, "--variants=ks_prior_only")
        self.assertEqual(second.returncode, 0, second.stderr[-3000:])
        self.assertNotIn("[pareto] lenet300", second.stdout)

    def test_unknown_method_is_a_usage_error(self):
        result = self._run(self.create_tempdir().full_path, "--methods=magic")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("magic", result.stderr)


class ReportTest(TestCase):
    def _runs(self):
        base = {"model": "lenet300", "target": 0.95, "hidden_sparsity": 0.96,
                "layer_sparsity": {"fc1": 0.96, "fc2": 0.9, "fc3": 0.5},
                "train_seconds": 10.0}
        return [dict(base, method="ks", seed=s, test_accuracy=a, fc_sparsity=0.95,
                     top_magnitude_overlap={"fc1": 0.9, "fc2": 0.8, "fc3": 1.0})
                for s, a in ((0, 0.88), (1, 0.89))]

    def test_means_over_seeds_and_markdown_section(self):
        path = os.path.join(self.create_tempdir().full_path, "BENCHMARKS.md")
        with open(path, "w") as f:
            f.write("intro\n<!-- pareto:begin -->\nold\n<!-- pareto:end -->\nmiddle\n"
                    "<!-- pareto_runs:begin -->\nold\n<!-- pareto_runs:end -->\noutro\n")
        original, report.BENCHMARKS_MD = report.BENCHMARKS_MD, path
        try:
            rows = pareto_report.write(self._runs(), self.create_tempdir().full_path,
                                       markdown=True, command="python -m benchmarks.pareto --x")
        finally:
            report.BENCHMARKS_MD = original
        self.assertAlmostEqual(rows[0]["mean_accuracy"], 0.885)
        with open(path) as f:
            text = f.read()
        self.assertTrue(text.startswith("intro\n") and text.endswith("outro\n"))
        self.assertNotIn("old", text)
        main, runs = text.split("middle\n")
        self.assertIn("| LeNet-300-100 | 0.95 | 0.8850 (0.9500) |", main)  # ks vs baselines
        self.assertIn("| ks | 0.95 | 0.9500 | 0.9600 | 96.0/90.0/50.0 | 0.8800 / 0.8900 | "
                      "**0.8850** |", runs)  # per seed, in the appendix's section
        self.assertNotIn("0.8800 / 0.8900", main)
        self.assertIn("python -m benchmarks.pareto --x", main)
        self.assertIn("<!-- pareto_runs:begin (generated by python -m benchmarks.pareto "
                      "--markdown) -->\nCommand: `python -m benchmarks.pareto --x`", runs)


    def test_paired_differences_by_seed(self):
        def run(method, seed, accuracy, target=0.99):
            return {"model": "lenet300", "method": method, "target": target,
                    "seed": seed, "test_accuracy": accuracy}

        runs = [run("ks", 0, 0.870), run("ks", 1, 0.860), run("ks", 2, 0.880),
                run("gmp_global", 0, 0.865), run("gmp_global", 1, 0.850),
                run("tfmot", 0, 0.800), run("tfmot", 1, 0.810),
                run("dense", 0, 0.890, target=None), run("dense", 1, 0.880, target=None)]
        seeds, diffs, mean, error = pareto_report.paired(runs, "ks", "gmp_global",
                                                         "lenet300", 0.99)
        self.assertEqual(seeds, [0, 1])  # seed 2 has no gmp_global run
        self.assertAllClose(diffs, [0.5, 1.0])
        self.assertAlmostEqual(mean, 0.75)
        self.assertAlmostEqual(error, 0.25)  # stdev 0.354 / sqrt(2)
        _, _, gap, _ = pareto_report.paired(runs, "dense", "ks", "lenet300", None,
                                            other_target=0.99)
        self.assertAlmostEqual(gap, 2.0)
        table = pareto_report.paired_table(runs)
        self.assertIn("| LeNet-300-100 | 0.99 | ks | 2 | +0.50 / +1.00 | **+0.75 ± 0.25** "
                      "| +6.00 ± 1.00 | +2.00 ± 0.00 | vs gmp ≥ +0.5; vs tfmot ≥ 0 | yes / yes |",
                      table)


if __name__ == "__main__":
    tf.test.main()
