"""lenet5 on fashion_mnist, all FC layers switched, 90% target FC sparsity.

    python -m trainers.train --config=configs/lenet5_fashion_mnist.py --workdir=/tmp/lenet5_fashion_mnist

Fashion-MNIST ships offline (Debian's dataset-fashion-mnist).
Measured here (2-core CPU, seed 0, 2026-11-29, standardised inputs, a switch
step every 100, ERK split; `python -m benchmarks.demo`, which ran the command
above and committed its report as
benchmarks/results/demo/lenet5_fashion_mnist.json): test accuracy 0.8970 at
FC sparsity 0.9000 (fc1/fc2/fc3 0.9220/0.8543/0.1940), 71 s of training (10
epochs).
`switched_layers="all"` also switches conv1/conv2 (the target then counts
their weights too): this recipe then reached test accuracy 0.8939 at 90%
and 0.8842 at 95% of all five kernels' weights (seeds 0-2, 10 epochs;
`python -m benchmarks.pretrained`, its `ks_scratch` rows in
benchmarks/results/pretrained/results.json, BENCHMARKS.md "Pruning a
pretrained model").
BENCHMARKS.md compares this recipe with TFMOT and magnitude pruning.
"""

from configs import common


def get_config():
    return common.mnist_config(
        "lenet5", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
