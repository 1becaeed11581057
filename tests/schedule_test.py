import keras
import tensorflow as tf
from absl.testing import parameterized

from keras_switch import SwitchSchedule
from tests.test_case import TestCase


def phases(schedule, steps):
    return [tuple(schedule(step)) for step in range(steps)]


# (task, switch, stage, mask_source)
DENSE = (True, False, "warmup", "dense")
# The first switching step asks the switcher for its mask; later task steps
# use the mask the last switch step stored.
FIRST_TASK = (True, False, "switching", "switcher")
FIRST_BOTH = (True, True, "switching", "switcher")
TASK = (True, False, "switching", "stored")
BOTH = (True, True, "switching", "stored")
SWITCH = (False, True, "switching", "stored")


class SwitchScheduleTest(TestCase, parameterized.TestCase):
    def test_every_batch(self):
        self.assertEqual(phases(SwitchSchedule(), 3), [FIRST_BOTH, BOTH, BOTH])

    def test_every_k_with_warmup_and_freeze(self):
        schedule = SwitchSchedule(switch_every=3, warmup_steps=2, freeze_step=9)
        freeze = (True, False, "frozen", "switcher")
        frozen = (True, False, "frozen", "stored")
        self.assertEqual(
            phases(schedule, 11),
            [DENSE, DENSE, FIRST_TASK, TASK, BOTH, TASK, TASK, BOTH, TASK, freeze, frozen],
        )

    def test_alternate(self):
        got = phases(SwitchSchedule(mode="alternate", warmup_steps=1), 5)
        self.assertEqual(got, [DENSE, FIRST_TASK, SWITCH, TASK, SWITCH])

    def test_phase_fields(self):
        phase = SwitchSchedule()(0)
        self.assertTrue(phase.task and phase.switch)
        self.assertEqual((phase.stage, phase.mask_source), ("switching", "switcher"))
        # The earlier names stay: `mask` is the mask source, `frozen` a stage.
        self.assertEqual(phase.mask, "switcher")
        self.assertFalse(phase.frozen)
        frozen = SwitchSchedule(freeze_step=1)(5)
        self.assertTrue(frozen.frozen)
        self.assertEqual(frozen.stage, "frozen")

    def test_round_trip(self):
        schedule = SwitchSchedule(mode="every_batch", switch_every=4, freeze_step=10)
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(schedule)
        )
        self.assertEqual(schedule.get_config(), revived.get_config())

    @parameterized.named_parameters(
        ("mode", dict(mode="sometimes"), "mode"),
        ("switch_every", dict(switch_every=0), "switch_every"),
        ("warmup", dict(warmup_steps=-1), "warmup_steps"),
        ("freeze_before_warmup", dict(warmup_steps=5, freeze_step=3), "freeze_step"),
        ("alternate_k", dict(mode="alternate", switch_every=2), "switch_every"),
        ("float", dict(switch_every=1.5), "switch_every"),
    )
    def test_invalid_arguments_raise(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, name):
            SwitchSchedule(**kwargs)


if __name__ == "__main__":
    tf.test.main()
