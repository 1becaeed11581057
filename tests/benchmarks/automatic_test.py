"""benchmarks.automatic: the curve reading and the verdicts on a hand-made
payload (benchmarks.automatic_report), and one tiny run through the script
(the real benchmark takes ~40 minutes: see BENCHMARKS.md)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from benchmarks import automatic_report
from tests.helpers import ROOT
from tests.test_case import TestCase


def _pareto(model, method, target, seed, sparsity, accuracy):
    return {"model": model, "method": method, "target": target, "seed": seed,
            "fc_sparsity": sparsity, "test_accuracy": accuracy}


# gmp_global's curve for seeds 1 and 2: dense 0.88, 0.89 at 90%, 0.88 at
# 95%, 0.86 at 98% (means of the two seeds).
PARETO = [
    _pareto("lenet300", "dense", None, 1, 0.0, 0.875),
    _pareto("lenet300", "dense", None, 2, 0.0, 0.885),
    _pareto("lenet300", "gmp_global", 0.9, 1, 0.9, 0.89),
    _pareto("lenet300", "gmp_global", 0.9, 2, 0.9, 0.89),
    _pareto("lenet300", "gmp_global", 0.95, 1, 0.95, 0.88),
    _pareto("lenet300", "gmp_global", 0.95, 2, 0.95, 0.88),
    _pareto("lenet300", "gmp_global", 0.98, 1, 0.98, 0.85),
    _pareto("lenet300", "gmp_global", 0.98, 2, 0.98, 0.87),
    _pareto("lenet300", "gmp_global", 0.98, 3, 0.98, 0.10),  # another seed: left out
]


def _run(seed, budget, accuracy, sparsity, met=True):
    return {"model": "lenet300", "budget": budget, "seed": seed, "test_accuracy": accuracy,
            "fc_sparsity": sparsity, "layer_sparsity": {"fc1": sparsity},
            "train_seconds": 1.0,
            "budget_info": {"met": met, "reference_validation_accuracy": 0.87,
                            "validation_accuracy": 0.865}}


class CurveTest(TestCase):
    def test_curve_averages_the_given_seeds(self):
        self.assertEqual(automatic_report.curve(PARETO, "lenet300", "gmp_global", [1, 2]),
                         [(0.0, 0.88), (0.9, 0.89), (0.95, 0.88), (0.98, 0.86)])

    def test_sparsity_at_reads_the_sparsest_point_keeping_the_accuracy(self):
        points = automatic_report.curve(PARETO, "lenet300", "gmp_global", [1, 2])
        self.assertAlmostEqual(automatic_report.sparsity_at(points, 0.88), 0.95)
        self.assertAlmostEqual(automatic_report.sparsity_at(points, 0.87), 0.965)  # halfway 95-98%
        self.assertAlmostEqual(automatic_report.sparsity_at(points, 0.86), 0.98)
        self.assertAlmostEqual(automatic_report.sparsity_at(points, 0.885), 0.925)
        self.assertIsNone(automatic_report.sparsity_at(points, 0.90))  # never that accurate


class SummaryTest(TestCase):
    def _payload(self, runs):
        return {"models": ["lenet300"], "budgets": [0.005, 0.01], "runs": runs,
                "pareto_runs": PARETO, "timing": [], "variants": [], "variant_arguments": {}}

    def test_targets_met_and_missed(self):
        runs = [_run(1, 0.01, 0.871, 0.97), _run(2, 0.01, 0.873, 0.975),
                _run(1, 0.005, 0.86, 0.96, met=False), _run(2, 0.005, 0.86, 0.96)]
        rows = {r["budget"]: r for r in automatic_report.summarize(self._payload(runs))}
        one = rows[0.01]
        self.assertAlmostEqual(one["test_accuracy"], 0.872)
        self.assertAlmostEqual(one["dense_accuracy"], 0.88)
        self.assertTrue(one["test_target_met"])  # 0.872 >= 0.88 - 0.01 - 0.002
        self.assertAlmostEqual(one["gmp_sparsity_at_accuracy"], 0.962)
        self.assertTrue(one["on_gmp_curve"])  # 0.9725 >= 0.962
        self.assertFalse(one["floor_met"])  # LeNet-300-100 at 1 pt: 98%
        self.assertEqual(one["budget_held"], 2)
        self.assertEqual(one["fc_sparsity_range"], [0.97, 0.975])
        half = rows[0.005]
        self.assertFalse(half["test_target_met"])  # 0.86 < 0.88 - 0.005 - 0.002
        self.assertFalse(half["on_gmp_curve"])  # gmp keeps 0.86 up to 98%
        self.assertIsNone(half["floor"])
        self.assertEqual(half["budget_held"], 1)
        text = automatic_report.section(self._payload(runs))[1]
        self.assertIn("| LeNet-300-100 | 1 pt | 0.8720 ± 0.0014 | 0.8800 | met |", text)
        self.assertIn("| met; ≥ 98%: **missed** | 2 of 2 |", text)

    def test_another_allocation_is_compared_paired_by_seed(self):
        runs = [_run(1, 0.01, 0.871, 0.97), _run(2, 0.01, 0.873, 0.975)]
        other = [dict(_run(1, 0.01, 0.869, 0.96), allocation="magnitude"),
                 dict(_run(2, 0.01, 0.872, 0.965, met=False), allocation="magnitude")]
        payload = dict(self._payload(runs), allocation_runs=other)
        text = automatic_report.section(payload)[1]
        # default - magnitude: +0.2 and +0.1 pt of accuracy, +1.0 and +1.0 pt
        # of sparsity; magnitude's 0.8705 at 0.9625 is under gmp's curve
        # (0.8705 up to 0.95 + 0.475 * 0.03 = 0.96425), and held the budget
        # on seed 1 only.
        self.assertIn("| LeNet-300-100 | 1 pt | magnitude | 2 | 0.8705 | 0.9625 | "
                      "+0.15 ± 0.05 | +1.00 ± 0.00 | **missed** | 1 of 2 |", text)
        self.assertNotIn("magnitude", automatic_report.section(self._payload(runs))[1])


# Slow tier (docs/testing.md, "What is tested where"): a whole protocol, ~60 s.
@pytest.mark.slow
class ScriptTest(TestCase):
    def test_a_tiny_protocol_writes_its_results(self):
        output = self.create_tempdir().full_path
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.automatic", "--models=lenet300",
             "--budgets=0.05", "--seeds=1", "--epochs=2", "--switch_every=1",
             "--max_train_examples=640", "--max_test_examples=200",
             "--validation_examples=128", "--timing_target=0.9", "--compare_allocations=magnitude",
             f"--output_dir={output}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(output, "results.json")) as f:
            payload = json.load(f)
        self.assertTrue(payload["command"].startswith("python -m benchmarks.automatic"))
        (run,) = payload["runs"]
        self.assertEqual((run["model"], run["budget"], run["seed"]), ("lenet300", 0.05, 1))
        self.assertGreater(run["fc_sparsity"], 0.0)  # the controller pruned
        self.assertIsNotNone(run["budget_info"]["reference_validation_accuracy"])
        self.assertLen(run["curve"]["heldout_accuracy"], 2)
        (other,) = payload["allocation_runs"]
        self.assertEqual((other["allocation"], other["seed"]), ("magnitude", 1))
        (timing,) = payload["timing"]
        self.assertEqual(timing["target"], 0.9)
        self.assertTrue(os.path.exists(os.path.join(output, "automatic.png")))


if __name__ == "__main__":
    tf.test.main()
