"""MirroredStrategy on two logical CPUs (set up in conftest.py) matches one
device at the same global batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch import SwitchSchedule
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mirrored_strategy
from tests.test_case import mlp

# float32 sums reduced in a different order on two replicas: the trained
# values agree to rounding, and every hard mask entry agrees exactly.
ATOL = 1e-5
# The switcher's hidden biases feed a per-kernel-centred correction: their
# gradients cancel to rounding (~1e-9), which Adam's epsilon turns into
# updates of ~1e-5 whose sign is the rounding's.
SWITCHER_ATOL = 5e-5


def _cnn():
    """8x8 digits as images: SwitchedConv2D -> SwitchedConv2D -> SwitchedDense."""
    switcher = keras_switch.Switcher()
    inputs = keras.Input((64,))
    x = keras.layers.Reshape((8, 8, 1))(inputs)
    x = keras_switch.SwitchedConv2D(6, 3, activation="relu", switcher=switcher)(x)
    x = keras_switch.SwitchedConv2D(8, 3, strides=2, activation="relu", switcher=switcher)(x)
    x = keras.layers.Flatten()(x)
    return keras_switch.SwitchingModel(inputs, keras_switch.SwitchedDense(10, switcher=switcher)(x))


def _modern():
    """8x8 digits: SwitchedDepthwiseConv2D -> SwitchedConv1D over the rows ->
    SwitchedEinsumDense -> SwitchedDense."""
    switcher = keras_switch.Switcher()
    inputs = keras.Input((64,))
    x = keras.layers.Reshape((8, 8, 1))(inputs)
    x = keras_switch.SwitchedDepthwiseConv2D(3, depth_multiplier=4, activation="relu",
                                             switcher=switcher)(x)
    x = keras.layers.Reshape((6, 24))(x)
    x = keras_switch.SwitchedConv1D(8, 3, padding="causal", activation="relu",
                                    switcher=switcher)(x)
    x = keras_switch.SwitchedEinsumDense("abc,cd->abd", output_shape=(6, 8), bias_axes="d",
                                         activation="relu", switcher=switcher)(x)
    x = keras.layers.Flatten()(x)
    return keras_switch.SwitchingModel(inputs, keras_switch.SwitchedDense(10, switcher=switcher)(x))


def _train(strategy, schedule, steps=6, net=mlp, **compile_kwargs):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = net()
        compile_for_classes(model, schedule=schedule, **compile_kwargs)
    (x, y), _ = digits(64 * steps)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    return model


class MirroredTest(TestCase, parameterized.TestCase):
    def test_two_logical_devices_exist(self):
        self.assertGreaterEqual(len(tf.config.list_logical_devices("CPU")), 2)

    @parameterized.named_parameters(
        ("convolutions_target", SwitchSchedule(switch_every=2), dict(target_sparsity=0.6,
                                                                     net=_cnn)),
        ("depthwise_conv1d_einsum_target", SwitchSchedule(switch_every=2),
         dict(target_sparsity=0.6, net=_modern)),
        ("every_k_l1_frozen", SwitchSchedule(switch_every=2, freeze_step=5),
         dict(sparsity_penalty=5.0)),
    )
    def test_matches_one_device(self, schedule, compile_kwargs):
        matches_one_device(self, schedule, compile_kwargs)

    def test_save_load_under_the_strategy(self):
        model = _train(mirrored_strategy(), SwitchSchedule(), target_sparsity=0.5)
        path = self.get_temp_dir() + "/mirrored.keras"
        model.save(path)
        with mirrored_strategy().scope():
            loaded = keras.models.load_model(path)
        x = digits(32)[0][0]
        self.assertAllClose(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
        loaded.fit(x, np.zeros(32, "int32"), batch_size=16, verbose=0)

    def test_unbuilt_subclassed_model_trains(self):
        from tests.helpers import SubclassedNet

        with mirrored_strategy().scope():
            model = compile_for_classes(SubclassedNet(), target_sparsity=0.5)
        (x, y), _ = digits(64)
        model.fit(x, y, batch_size=32, verbose=0)  # built by fit(), each optimizer over its set
        adam_slots = 2
        self.assertLen(model.task_optimizer.variables, 2 + adam_slots * len(model.task_variables))
        self.assertLen(model.switch_optimizer.variables,
                       2 + adam_slots * len(model.switcher_variables))
        with mirrored_strategy().scope():
            model = SubclassedNet()
            model(x[:1])
            compile_for_classes(model, target_sparsity=0.5)
        model.fit(x, y, batch_size=32, verbose=0)


# Slow tier (docs/testing.md, "What is tested where"): the alternate schedule and the
# default one on a Dense chain under the strategy; the default tier keeps a
# target on convolutions and a penalty with a frozen tail (switch steps,
# task-only steps and the freeze).
@pytest.mark.slow
class SlowMirroredTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("every_batch_target", SwitchSchedule(), dict(target_sparsity=0.6)),
        ("alternate_target", SwitchSchedule(mode="alternate"), dict(target_sparsity=0.5)),
    )
    def test_matches_one_device(self, schedule, compile_kwargs):
        matches_one_device(self, schedule, compile_kwargs)


def matches_one_device(test, schedule, compile_kwargs):
    """Trains the same model on one device and on two mirrored logical CPUs
    (`test`: the running TestCase) and compares weights, step and masks."""
    single = _train(tf.distribute.OneDeviceStrategy("CPU:0"), schedule, **compile_kwargs)
    multi = _train(mirrored_strategy(), schedule, **compile_kwargs)
    kernel = multi.switched_layers[0].kernel
    test.assertIsInstance(kernel.value, tf.distribute.DistributedValues)
    test.assertEqual(
        keras.ops.convert_to_numpy(multi.switching_step),
        keras.ops.convert_to_numpy(single.switching_step),
    )
    for a, b in zip(single.weights, multi.weights):
        atol = SWITCHER_ATOL if "/switcher/" in a.path else ATOL
        test.assertAllClose(a, b, atol=atol, msg=a.path)
    for a, b in zip(single.switched_layers, multi.switched_layers):
        test.assertAllEqual(a.current_mask(), b.current_mask())
    report = keras_switch.sparsity_report(multi)
    test.assertEqual(report["overall"], keras_switch.sparsity_report(single)["overall"])
    if "target_sparsity" in compile_kwargs:
        test.assertAlmostEqual(report["overall"], compile_kwargs["target_sparsity"], delta=0.01)


if __name__ == "__main__":
    tf.test.main()
