"""lenet300 on fashion_mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py --workdir=/tmp/lenet300_fashion_mnist

Fashion-MNIST ships offline (Debian's dataset-fashion-mnist).
Measured here (2-core CPU, seed 0, 2026-11-29, standardised inputs, ERK
split; `python -m benchmarks.demo`, which ran the command above and committed
its report as benchmarks/results/demo/lenet300_fashion_mnist.json): test
accuracy 0.8891 at FC sparsity 0.9000 (fc1/fc2/fc3 0.9204/0.7698/0.0000),
57 s of training (10 epochs; `make demo` runs this config, docs/trainer.md). `switched_layers="all"` (convolutions too) changes
nothing here: LeNet-300-100 has only Dense layers. BENCHMARKS.md compares this recipe
with TFMOT and magnitude pruning at 90-99.5%.
"""

from configs import common


def get_config():
    return common.mnist_config(
        "lenet300", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
