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
        schedule = SwitchSchedule(switch_every=1, freeze_step=None)
        self.assertEqual(phases(schedule, 3), [FIRST_BOTH, BOTH, BOTH])

    def test_every_k_with_warmup_and_freeze(self):
        schedule = SwitchSchedule(switch_every=3, warmup_steps=2, freeze_step=9)
        freeze = (True, False, "frozen", "switcher")
        frozen = (True, False, "frozen", "stored")
        self.assertEqual(
            phases(schedule, 11),
            [DENSE, DENSE, FIRST_TASK, TASK, BOTH, TASK, TASK, BOTH, TASK, freeze, frozen],
        )

    def test_alternate(self):
        got = phases(SwitchSchedule(mode="alternate", warmup_steps=1, freeze_step=None), 5)
        self.assertEqual(got, [DENSE, FIRST_TASK, SWITCH, TASK, SWITCH])

    def test_phase_fields(self):
        phase = SwitchSchedule(switch_every=1, freeze_step=None)(0)
        self.assertTrue(phase.task and phase.switch)
        self.assertEqual((phase.stage, phase.mask_source), ("switching", "switcher"))
        # The earlier names stay: `mask` is the mask source, `frozen` a stage.
        self.assertEqual(phase.mask, "switcher")
        self.assertFalse(phase.frozen)
        frozen = SwitchSchedule(switch_every=1, freeze_step=1)(5)
        self.assertTrue(frozen.frozen)
        self.assertEqual(frozen.stage, "frozen")

    def test_defaults_are_planned_from_the_run_length(self):
        schedule = SwitchSchedule()
        self.assertEqual((schedule.switch_every, schedule.freeze_step), ("auto", "auto"))
        self.assertFalse(schedule.planned)
        with self.assertRaisesRegex(ValueError, r"plan\(total_steps\)"):
            schedule(0)
        # The recipe: 10 epochs of 469 steps, the last 2 frozen, every 100.
        schedule.plan(4690)
        self.assertEqual((schedule.switch_every, schedule.freeze_step), (100, 3752))
        self.assertTrue(schedule.planned)
        schedule.plan(10)  # planned once: a later plan changes nothing
        self.assertEqual(schedule.freeze_step, 3752)

    def test_auto_interval_gives_a_short_run_32_switch_steps(self):
        schedule = SwitchSchedule(warmup_steps=10)
        schedule.plan(570)
        self.assertEqual(schedule.freeze_step, 10 + 448)  # 80% of the 560 after warm-up
        self.assertEqual(schedule.switch_every, 448 // 32)
        tiny = SwitchSchedule()
        tiny.plan(5)
        self.assertEqual((tiny.freeze_step, tiny.switch_every), (4, 1))

    def test_given_freeze_step_decides_the_interval_without_a_run_length(self):
        schedule = SwitchSchedule(freeze_step=640)
        schedule.plan()
        self.assertEqual(schedule.switch_every, 20)
        endless = SwitchSchedule(freeze_step=None)
        endless.plan()
        self.assertEqual(endless.switch_every, "auto")  # needs the run length
        endless.plan(100000)
        self.assertEqual(endless.switch_every, 100)

    def test_alternate_takes_no_interval(self):
        self.assertEqual(SwitchSchedule(mode="alternate").switch_every, 1)
        with self.assertRaisesRegex(ValueError, "switch_every"):
            SwitchSchedule(mode="alternate", switch_every="auto")

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
        ("other_word", dict(switch_every="often"), "switch_every.*'auto'"),
        ("freeze_word", dict(freeze_step="late"), "freeze_step.*'auto' or None"),
    )
    def test_invalid_arguments_raise(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, name):
            SwitchSchedule(**kwargs)


if __name__ == "__main__":
    tf.test.main()
