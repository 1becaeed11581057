"""trainers/build.py: the config's library objects, and their errors turned
into ConfigErrors naming the config key (in-process; the binary's rows are
in bad_input_test.py)."""

import tensorflow as tf
from absl.testing import parameterized

from keras_switch import AccuracyBudget
from keras_switch import SparsityControl
from keras_switch import SparsityPenalty
from keras_switch import TargetSparsity
from tests.helpers import small_config
from tests.test_case import TestCase
from trainers import build
from trainers.preflight import ConfigError


def _config(**overrides):
    config = small_config("/nonexistent")
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


class ScheduleAndSparsityTest(TestCase, parameterized.TestCase):
    def test_epochs_become_steps(self):
        config = _config(**{"num_epochs": 6, "schedule.warmup_epochs": 1,
                            "schedule.ramp_epochs": 2, "schedule.freeze_epochs": 2,
                            "schedule.switch_every": 5})
        schedule, sparsity = build.schedule_and_sparsity(config, steps_per_epoch=10)
        self.assertEqual(schedule.get_config(), {
            "mode": "every_batch", "switch_every": 5, "warmup_steps": 10, "freeze_step": 40})
        self.assertIsInstance(sparsity, TargetSparsity)
        self.assertEqual(sparsity.get_config(), {
            "sparsity": 0.9, "ramp_steps": 20, "ramp_power": 3.0, "allocation": "auto"})

    def test_the_ramp_keys_only_shape_a_target(self):
        _, penalty = build.schedule_and_sparsity(
            _config(target_sparsity=None, sparsity_penalty=0.1, allocation="uniform"), 10)
        self.assertIsInstance(penalty, SparsityPenalty)
        _, none = build.schedule_and_sparsity(_config(target_sparsity=None), 10)
        self.assertIs(type(none), SparsityControl)

    def test_the_budget_takes_the_config_allocation(self):
        overrides = {"target_sparsity": None, "accuracy_budget": 0.01, "num_epochs": 10,
                     "schedule.freeze_epochs": 2}
        _, budget = build.schedule_and_sparsity(_config(**overrides), steps_per_epoch=10)
        self.assertIsInstance(budget, AccuracyBudget)
        self.assertEqual(budget.allocation, "auto")
        _, budget = build.schedule_and_sparsity(
            _config(allocation="magnitude", **overrides), steps_per_epoch=10)
        self.assertEqual(budget.allocation, "magnitude")
        with self.assertRaisesRegex(ConfigError, r"^config\.allocation='learned': .*expected "
                                    r"one of \('auto', 'magnitude', 'erk'\)"):
            build.schedule_and_sparsity(_config(allocation="learned", **overrides), 10)

    @parameterized.named_parameters(
        ("target", {"target_sparsity": 1.5}, r"^config\.target_sparsity=1\.5: .*`target_sparsity`"),
        ("penalty", {"target_sparsity": None, "sparsity_penalty": -1.0},
         r"^config\.sparsity_penalty=-1\.0: .*expected a number >= 0"),
        ("both", {"sparsity_penalty": 0.5}, r"^config\.target_sparsity=0\.9: .*not both"),
        ("allocation", {"allocation": "uniform"}, r"^config\.allocation='uniform': "),
        ("power", {"schedule.ramp_power": 0.5}, r"^config\.schedule\.ramp_power=0\.5: "),
        ("mode", {"schedule.mode": "never"}, r"^config\.schedule\.mode='never': "),
        ("switch_every", {"schedule.switch_every": 0}, r"^config\.schedule\.switch_every=0: "),
        ("ramp_after_freeze", {"schedule.ramp_epochs": 3},
         r"^config\.schedule\.ramp_epochs=3: The target ramp ends at step 30 .*"
         r"freeze_step=20: .*\(in epochs: warmup_epochs=0 \+ ramp_epochs=3 must be <= "
         r"num_epochs - freeze_epochs = 2\)$"),
    )
    def test_errors_name_the_config_key(self, overrides, pattern):
        with self.assertRaisesRegex(ConfigError, pattern):
            build.schedule_and_sparsity(_config(**overrides), steps_per_epoch=10)

    def test_switcher_errors_name_the_config_key(self):
        with self.assertRaisesRegex(ConfigError, r"^config\.switcher\.prior_scale=0\.0: "
                                    r".*expected a positive number"):
            build.build_model(_config(**{"switcher.prior_scale": 0.0}), (28, 28))

    def test_switched_layers(self):
        fc = build.build_model(_config(model="lenet5"), (28, 28))
        self.assertEqual([layer.name for layer in fc.switched_layers], ["fc1", "fc2", "fc3"])
        every = build.build_model(_config(model="lenet5", switched_layers="all"), (28, 28))
        self.assertEqual([layer.name for layer in every.switched_layers],
                         ["conv1", "conv2", "fc1", "fc2", "fc3"])
        with self.assertRaisesRegex(ConfigError, r"^config\.switched_layers='conv': .*expected "
                                    r"one of \('fc', 'all'\)"):
            build.build_model(_config(switched_layers="conv"), (28, 28))


if __name__ == "__main__":
    tf.test.main()
