"""Every config in configs/ imports, checks out, and trains a few steps on
generated data in its dataset's real file format."""

import glob
import importlib
import json
import os

import pytest
import tensorflow as tf
from absl.testing import parameterized

from tests.helpers import write_dataset_files
from tests.test_case import TestCase
from trainers import train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    os.path.splitext(os.path.basename(path))[0]
    for path in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(path).startswith(("_", "common"))
)
# In the slow tier (`make test-all`): the CIFAR-10 configs and each
# architecture's second dataset (tests/models_test.py builds every
# architecture and trains ResNet18 a step; tests/cifar_test.py reads both
# CIFAR formats). The default tier keeps both LeNets on both datasets, the
# budget config, and one CIFAR network end to end (mobilenet_cifar100: the
# CIFAR-100 format, depthwise convolutions and their export), and stays
# within its time budget (the ViT's run and exports take ~40 s: slow tier).
SLOW = ("resnet18_cifar10", "resnet34_cifar10", "resnet34_cifar100", "resnet18_cifar100",
        "vgg16_cifar10", "vgg16_cifar100", "mobilenet_cifar10", "vit_fashion_mnist")
PAPER = {
    (model, dataset)
    for model in ("lenet300", "lenet5")
    for dataset in ("mnist", "fashion_mnist")
} | {
    (model, dataset)
    for model in ("resnet18", "resnet34", "vgg16", "mobilenet")
    for dataset in ("cifar10", "cifar100")
}


def _config(name):
    return importlib.import_module(f"configs.{name}").get_config()


class ConfigsTest(TestCase, parameterized.TestCase):
    def test_every_paper_pair_has_a_config(self):
        pairs = {(_config(n).model, _config(n).dataset) for n in CONFIGS}
        self.assertEqual(PAPER - pairs, set())
        self.assertIn("lenet300_fashion_mnist", CONFIGS)

    def test_slow_tier_names_real_configs(self):
        self.assertEqual(sorted(set(SLOW) - set(CONFIGS)), [])

    @parameterized.named_parameters((name, name) for name in CONFIGS if name not in SLOW)
    def test_trains_a_few_steps(self, name):
        trains_a_few_steps(self, name)


@pytest.mark.slow
class SlowConfigsTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters((name, name) for name in SLOW)
    def test_trains_a_few_steps(self, name):
        trains_a_few_steps(self, name)


def trains_a_few_steps(test, name):
    """Trains config `name` for 4 steps on generated files (`test`: the
    running TestCase)."""
    config = _config(name)
    train_lib.check_config(config)
    data_dir = test.create_tempdir().full_path
    write_dataset_files(data_dir, config.dataset)
    config.data_dir = data_dir
    config.data_source = "files"
    config.num_epochs = 2
    config.batch_size = 4
    config.max_train_examples = 8
    config.max_test_examples = 4
    config.schedule.warmup_epochs = 0
    config.schedule.ramp_epochs = 1
    config.schedule.freeze_epochs = 1
    if config.get("accuracy_budget") is not None:
        # One of the 5 generated examples is held out: 4 epochs of one step,
        # with a switch step each, leave the budget a reference step and a
        # search before the freeze (it refuses a schedule without them).
        config.num_epochs = 4
        config.schedule.switch_every = 1
    workdir = test.create_tempdir().full_path
    report = train_lib.train_and_evaluate(config, workdir)
    test.assertEqual(report["steps"], 4)
    test.assertEqual(report["model"], config.model)
    with open(os.path.join(workdir, "report.json")) as f:
        test.assertEqual(json.load(f)["dataset"], config.dataset)
    if config.target_sparsity is not None:  # over the layers the config switches
        measured = report["fc_sparsity" if config.switched_layers == "fc" else "sparsity"]
        test.assertAlmostEqual(measured, config.target_sparsity, delta=0.01)
    if config.get("accuracy_budget") is not None:
        test.assertEqual(report["accuracy_budget"], config.accuracy_budget)
        test.assertEqual(report["validation_examples"], 1)  # 10% of 8, at least one
        test.assertIsNotNone(report["reference_validation_accuracy"])


class SwitcherDefaultsTest(TestCase):
    def test_config_switcher_defaults_are_the_library_defaults(self):
        import inspect

        from configs import common
        from keras_switch import Switcher

        config = common.base_config("lenet300", "fashion_mnist").switcher
        defaults = inspect.signature(Switcher.__init__).parameters
        for key, value in config.items():
            self.assertEqual(tuple(value) if isinstance(value, tuple) else value,
                             defaults[key].default, msg=key)


if __name__ == "__main__":
    tf.test.main()
