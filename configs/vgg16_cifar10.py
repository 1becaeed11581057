"""vgg16 (32x32 variant) on cifar10: plain convolution trunk, switched FC head.

    python -m trainers.train --config=configs/vgg16_cifar10.py --workdir=/tmp/vgg16_cifar10 \
        --config.data_dir=DIR   # containing cifar-10-batches-py / cifar-100-python

Without --config.data_dir the data comes from tensorflow-datasets (downloads).
Not measurable on this project's 2-core CPU machines (hours per epoch); the
configs are built and run for a few steps on generated CIFAR files in tests.
"""

from configs import common


def get_config():
    return common.cifar_config("vgg16", "cifar10")
