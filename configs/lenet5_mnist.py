"""lenet5 on mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet5_mnist.py --workdir=/tmp/lenet5_mnist

MNIST: set --config.data_dir to a directory of MNIST IDX files, or leave it
unset to use tensorflow-datasets (downloads; not measurable offline here).
Runtime and accuracy: not measurable here (no MNIST offline); tested on
generated IDX files.
"""

from configs import common


def get_config():
    return common.mnist_config("lenet5", "mnist")
