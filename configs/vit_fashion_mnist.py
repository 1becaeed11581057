"""vit on fashion_mnist, every attention projection and Dense layer switched,
90% target sparsity over all of them.

    python -m trainers.train --config=configs/vit_fashion_mnist.py --workdir=/tmp/vit_fashion_mnist

A small Vision Transformer (`keras_switch.models.vit`: 7x7 patches, 4
pre-norm encoder blocks of width 64 with 4 heads and an MLP of 128, average
pooling, one Dense output layer). `switched_layers="all"` switches the
patch embedding, each block's query/key/value/output projections and MLP,
and the output layer. Fashion-MNIST ships offline (Debian's
dataset-fashion-mnist).
Measured here (2-core CPU, seed 0, 2026-12-05, standardised inputs, a switch
step every 100, the magnitude split; `python -m benchmarks.demo
--configs=vit_fashion_mnist`, which ran the command above and committed its
report as benchmarks/results/demo/vit_fashion_mnist.json): test accuracy
0.8755 at sparsity 0.9000 over the 26 switched kernels (FC 0.9345), the
attention projections 86.3% sparse and the Dense layers 93.5%; 279 s of
training (10 epochs). `benchmarks.modern` compares it with gradual magnitude
pruning of the same kernels.
"""

from configs import common


def get_config():
    config = common.mnist_config(
        "vit", "fashion_mnist", data_dir="/usr/share/datasets/fashion-mnist"
    )
    config.switched_layers = "all"
    return config
