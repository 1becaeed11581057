"""lenet300 on fashion_mnist with an accuracy budget instead of a target:
the run finds the sparsest FC layers whose held-out accuracy stays within
0.5 pt of its own dense reference (AccuracyBudget, README "Automatic
sparsity").

    python -m trainers.train --config=configs/lenet300_fashion_mnist_auto.py --workdir=/tmp/lenet300_auto

5,000 training examples are held out for the budget (the test set is never
used). BENCHMARKS.md, "Automatic sparsity", measures it over seeds against
the pareto curves.
"""

from configs import common


def get_config():
    config = common.mnist_config(
        "lenet300", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
    config.target_sparsity = None
    config.accuracy_budget = 0.005
    return config
