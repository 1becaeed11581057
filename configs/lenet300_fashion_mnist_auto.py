"""lenet300 on fashion_mnist with an accuracy budget instead of a target:
the run finds the sparsest FC layers whose held-out accuracy stays within
0.5 pt of its own dense reference (AccuracyBudget,
docs/accuracy-budget.md).

    python -m trainers.train --config=configs/lenet300_fashion_mnist_auto.py --workdir=/tmp/lenet300_auto

5,000 training examples are held out for the budget (the test set is never
used). Measured by `python -m benchmarks.automatic` (the same recipe, seeds
1-3, 2026-11-29; benchmarks/results/automatic/results.json): FC sparsity
0.9765 on average (0.9702-0.9856 over the seeds) at test accuracy 0.8813,
against 0.8828 for dense training on the same seeds; the held-out budget
held in every run. BENCHMARKS.md, "Automatic sparsity", puts it on the
pareto curves.
"""

from configs import common


def get_config():
    config = common.mnist_config(
        "lenet300", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
    config.target_sparsity = None
    config.accuracy_budget = 0.005
    return config
