"""Defaults shared by every experiment config.

Every key can be overridden on the command line, `--config.<key>=<value>`;
keys whose default is None are typed placeholders, so that
`--config.target_sparsity=0.95` works where the default is None.
"""

import ml_collections
from ml_collections import config_dict


def base_config(model, dataset, data_dir=None):
    config = ml_collections.ConfigDict()
    # Model and data.
    config.model = model
    config.dataset = dataset
    config.data_dir = config_dict.placeholder(str)
    config.data_dir = data_dir
    config.data_source = "auto"  # auto | files | tfds | sklearn
    config.augment = False
    config.max_train_examples = config_dict.placeholder(int)
    config.max_test_examples = config_dict.placeholder(int)
    # Training.
    config.num_epochs = 10
    config.batch_size = 128
    config.seed = 0
    config.checkpoint_every_epochs = 1
    # Switcher and sparsity control (target_sparsity None = pure task loss).
    config.switcher = ml_collections.ConfigDict(
        {
            "hidden_units": (8,),
            # keras_switch.switcher.DEFAULT_FEATURES (configs import no
            # TensorFlow; tests/configs_test.py checks they agree).
            "features": ("magnitude", "row", "column", "fan_in", "fan_out"),
            "initial_logit": 2.0,
            "magnitude_prior": 1.0,
            "prior_scale": 1e-3,
            "center_correction": True,
        }
    )
    config.target_sparsity = config_dict.placeholder(float)
    config.target_sparsity = 0.9
    config.sparsity_penalty = config_dict.placeholder(float)
    # An accuracy budget instead of a target (AccuracyBudget,
    # docs/accuracy-budget.md): the held-out accuracy the run may lose against
    # its own dense reference, a fraction (0.005 = 0.5 pt); needs
    # target_sparsity=None. validation_examples: training examples held out
    # for it (None: 10% of the training split, at most 5,000).
    config.accuracy_budget = config_dict.placeholder(float)
    config.validation_examples = config_dict.placeholder(int)
    # "auto": ERK while only Dense layers are switched, global magnitude
    # pruning's split once a convolution is (switched_layers="all"); or
    # "erk", "magnitude", "learned" (BENCHMARKS.md).
    config.allocation = "auto"
    # "fc": the fully connected layers (the paper's); "all": every layer with
    # a switched counterpart, MobileNet's depthwise convolutions included
    # (docs/convolutions.md).
    config.switched_layers = "fc"
    config.train_pruned_weights = False
    config.switch_estimator = "sigmoid"  # or "identity"
    # Optimizers.
    config.task_optimizer = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 1e-3}
    )
    config.switch_optimizer = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 1e-3}
    )
    # Schedule, in epochs: warm-up, ramp of the target, frozen tail.
    config.schedule = ml_collections.ConfigDict(
        {
            "mode": "every_batch",
            "switch_every": 100,
            "warmup_epochs": 0,
            "ramp_epochs": 5,
            "ramp_power": 3.0,
            "freeze_epochs": 1,
        }
    )
    return config


def mnist_config(model, dataset, data_dir=None):
    """LeNets on an MNIST-format dataset: 10 epochs, the 90% target ramped
    over the first 8, the last 2 frozen, a switch step every 100 batches."""
    config = base_config(model, dataset, data_dir=data_dir)
    config.num_epochs = 10
    config.batch_size = 128
    config.schedule.ramp_epochs = 8
    config.schedule.freeze_epochs = 2
    return config


def cifar_config(model, dataset):
    """32x32 CIFAR networks: SGD 0.05 for the task network, pad-crop/flip
    augmentation, 60 epochs: 5 dense warm-up, 20 of target ramp, 10 frozen."""
    config = base_config(model, dataset)
    config.augment = True
    config.num_epochs = 60
    config.batch_size = 128
    config.task_optimizer.name = "sgd"
    config.task_optimizer.learning_rate = 0.05
    config.schedule.warmup_epochs = 5
    config.schedule.ramp_epochs = 20
    config.schedule.freeze_epochs = 10
    return config
