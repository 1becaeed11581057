"""lenet300 on fashion_mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet300_fashion_mnist.py --workdir=/tmp/lenet300_fashion_mnist

Fashion-MNIST ships offline (Debian's dataset-fashion-mnist).
Runtime and accuracy: see the configs table in README.md.
"""

from configs import common


def get_config():
    config = common.base_config("lenet300", "fashion_mnist", data_dir='/usr/share/datasets/fashion-mnist')
    config.num_epochs = 8
    config.batch_size = 128
    config.schedule.ramp_epochs = 4
    return config
