"""`SwitchSummaries`: what it logs each epoch, read back from the event file."""

import os

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from keras_switch import SwitchSchedule
from keras_switch.callbacks import SwitchSummaries
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mlp

STEPS_PER_EPOCH = 4  # 256 examples, batch 64


def _scalars(logdir, tag):
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(logdir, "switches"), size_guidance={"tensors": 0}
    )
    accumulator.Reload()
    return [(event.step, float(tf.make_ndarray(event.tensor_proto)))
            for event in accumulator.Tensors(tag)]


class SwitchSummariesTest(TestCase):
    def test_phase_follows_warmup_switching_frozen(self):
        # One epoch of warm-up, two switching, two frozen.
        model = compile_for_classes(
            mlp(), target_sparsity=0.5, target_ramp_steps=STEPS_PER_EPOCH,
            schedule=SwitchSchedule(switch_every=2, warmup_steps=STEPS_PER_EPOCH,
                                    freeze_step=3 * STEPS_PER_EPOCH),
        )
        (x, y), _ = digits(64 * STEPS_PER_EPOCH)
        logdir = self.create_tempdir().full_path
        model.fit(x, y, batch_size=64, epochs=5, verbose=0,
                  callbacks=[SwitchSummaries(logdir)])
        phases = [value for _, value in _scalars(logdir, "phase")]
        self.assertEqual(phases, [0.0, 1.0, 1.0, 2.0, 2.0])
        sparsity = [value for _, value in _scalars(logdir, "sparsity/overall")]
        self.assertEqual(sparsity[0], 0.0)  # dense warm-up
        self.assertAlmostEqual(sparsity[-1], 0.5, delta=0.01)


if __name__ == "__main__":
    tf.test.main()
