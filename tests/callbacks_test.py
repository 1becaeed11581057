"""`SwitchSummaries`: what it logs each epoch, read back from the event file."""

import importlib.util
import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import keras_switch
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
    def test_without_tensorboard_the_callback_says_what_to_install(self):
        real = importlib.util.find_spec
        with mock.patch.object(importlib.util, "find_spec",
                               lambda name, *a: None if name == "tensorboard" else real(name, *a)):
            with self.assertRaisesRegex(ImportError, "pip install tensorboard"):
                keras_switch.SwitchSummaries("logs")

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

    def test_convolutions_log_their_masks_as_matrices(self):
        switcher = keras_switch.Switcher()
        inputs = keras.Input((8, 8, 1))
        x = keras_switch.SwitchedConv2D(4, 3, activation="relu", switcher=switcher,
                                        name="conv")(inputs)
        x = keras.layers.Flatten()(x)
        model = keras_switch.SwitchingModel(
            inputs, keras_switch.SwitchedDense(10, switcher=switcher, name="head")(x))
        compile_for_classes(model, target_sparsity=0.5)
        (x, y), _ = digits(64 * STEPS_PER_EPOCH)
        logdir = self.create_tempdir().full_path
        model.fit(x.reshape(-1, 8, 8, 1), y, batch_size=64, epochs=2, verbose=0,
                  callbacks=[SwitchSummaries(logdir)])
        accumulator = event_accumulator.EventAccumulator(
            os.path.join(logdir, "switches"), size_guidance={"tensors": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["tensors"]
        for tag in ("mask/conv", "switch_probability/conv", "masked_weights/conv",
                    "sparsity/conv"):
            self.assertIn(tag, tags)
        image = accumulator.Tensors("mask/conv")[-1]
        # An image summary holds width, height, then the encoded image.
        width, height = tf.make_ndarray(image.tensor_proto)[:2]
        self.assertEqual((int(height), int(width)), (3 * 3 * 1, 4))
        self.assertEqual(np.asarray(model.get_layer("conv").mask).shape, (3, 3, 1, 4))


    def test_every_layer_family_logs_its_mask_as_the_matrix_the_switcher_reads(self):
        switcher = keras_switch.Switcher()
        inputs = keras.Input((8, 8, 1))
        x = keras_switch.SwitchedDepthwiseConv2D(3, depth_multiplier=2, switcher=switcher,
                                                 name="depthwise")(inputs)
        x = keras.layers.Reshape((6, 12))(x)
        x = keras_switch.SwitchedConv1D(4, 2, switcher=switcher, name="conv1d")(x)
        x = keras_switch.SwitchedEinsumDense("abc,cd->abd", output_shape=(5, 3),
                                             switcher=switcher, name="einsum")(x)
        x = keras.layers.Flatten()(x)
        model = keras_switch.SwitchingModel(
            inputs, keras_switch.SwitchedDense(10, switcher=switcher, name="head")(x))
        compile_for_classes(model, target_sparsity=0.5)
        (x, y), _ = digits(64 * STEPS_PER_EPOCH)
        logdir = self.create_tempdir().full_path
        model.fit(x.reshape(-1, 8, 8, 1), y, batch_size=64, epochs=1, verbose=0,
                  callbacks=[SwitchSummaries(logdir)])
        accumulator = event_accumulator.EventAccumulator(
            os.path.join(logdir, "switches"), size_guidance={"tensors": 0})
        accumulator.Reload()
        for name, shape in (("depthwise", (9, 2)), ("conv1d", (24, 4)), ("einsum", (4, 3))):
            width, height = tf.make_ndarray(accumulator.Tensors(f"mask/{name}")[-1].tensor_proto)[:2]
            self.assertEqual((int(height), int(width)), shape, name)
            self.assertIn(f"sparsity/{name}", accumulator.Tags()["tensors"])

if __name__ == "__main__":
    tf.test.main()
