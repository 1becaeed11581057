"""lenet300 on fashion_mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py --workdir=/tmp/lenet300_fashion_mnist

Fashion-MNIST ships offline (Debian's dataset-fashion-mnist).
Measured here (2-core CPU, seed 0, 2026-11-29, standardised inputs): test
accuracy 0.8886 at FC sparsity 0.9000 (fc1/fc2/fc3 0.9244/0.7271/0.3530) in
87 s of training on a loaded machine (10 epochs; `make demo` runs this
config, README.md). BENCHMARKS.md compares this recipe
with TFMOT and magnitude pruning at 90-99.5%.
"""

from configs import common


def get_config():
    return common.mnist_config(
        "lenet300", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
