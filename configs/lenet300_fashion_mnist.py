"""lenet300 on fashion_mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py --workdir=/tmp/lenet300_fashion_mnist

Fashion-MNIST ships offline (Debian's dataset-fashion-mnist).
Measured here (2-core CPU, seed 0, 2026-11-24): test accuracy 0.8806 at FC
sparsity 0.9000 in 268 s of training (8 epochs; `make demo` runs this
config).
"""

from configs import common


def get_config():
    return common.mnist_config(
        "lenet300", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
