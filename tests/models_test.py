import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from keras_switch.models import MODELS
from keras_switch.models import build_model
from keras_switch.models import lenet_300_100
from keras_switch.models import resnet18
from tests.test_case import TestCase

IMAGE = (32, 32, 3)


def switched_shapes(model):
    return [list(layer.kernel.shape) for layer in model.switched_layers]


class LeNetTest(TestCase):
    def test_plain_without_a_switcher(self):
        model = lenet_300_100()
        self.assertNotIsInstance(model, keras_switch.SwitchingModel)
        self.assertEqual([type(layer) for layer in model.layers[2:]], [keras.layers.Dense] * 3)
        self.assertEqual([layer.name for layer in model.layers[2:]], ["fc1", "fc2", "fc3"])

    def test_lenet_300_100(self):
        model = lenet_300_100(switcher=keras_switch.Switcher())
        self.assertIsInstance(model, keras_switch.SwitchingModel)
        shapes = [r["shape"] for r in keras_switch.sparsity_report(model)["layers"]]
        self.assertEqual(shapes, [[784, 300], [300, 100], [100, 10]])
        self.assertLen(model.switchers, 1)
        self.assertEqual(model.predict(np.zeros((2, 28, 28)), verbose=0).shape, (2, 10))


class ViTTest(TestCase):
    def test_a_small_vit_switches_its_dense_layers_or_everything(self):
        fc = build_model("vit", (28, 28), 10, depth=2)
        self.assertEqual([layer.name for layer in fc.switched_layers],
                         ["patch_embedding", "block1_mlp_in", "block1_mlp_out",
                          "block2_mlp_in", "block2_mlp_out", "fc1"])
        self.assertEqual(switched_shapes(fc)[:3], [[49, 64], [64, 128], [128, 64]])
        everything = build_model("vit", (28, 28), 10, depth=2, switched_layers="all")
        kinds = [type(layer).__name__ for layer in everything.switched_layers]
        self.assertEqual(kinds.count("SwitchedEinsumDense"), 8)  # 4 projections a block
        self.assertEqual(kinds.count("SwitchedDense"), 6)
        x = np.random.RandomState(0).uniform(size=(3, 28, 28)).astype("float32")
        plain = keras_switch.models.vit(depth=2)
        self.assertEqual(plain.predict(x, verbose=0).shape, (3, 10))
        self.assertEqual(everything.predict(x, verbose=0).shape, (3, 10))
        everything.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           target_sparsity=0.8)
        everything.fit(x, np.array([0, 1, 2]), epochs=2, verbose=0)
        self.assertAlmostEqual(keras_switch.sparsity_report(everything)["overall"], 0.8,
                               delta=0.01)
        stripped = keras_switch.strip_switches(everything)
        self.assertAllClose(stripped.predict(x, verbose=0), everything.predict(x, verbose=0),
                            atol=1e-5)

    def test_bad_sizes_raise(self):
        with self.assertRaisesRegex(ValueError, "expected a divisor of the image's 28x28. "
                                                "Received: patch_size=5"):
            keras_switch.models.vit(patch_size=5)
        with self.assertRaisesRegex(ValueError, "divisor of dim=64. Received: num_heads=5"):
            keras_switch.models.vit(num_heads=5)


class RegistryTest(TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("lenet300", "lenet300", (28, 28), 10, {}, [[784, 300], [300, 100], [100, 10]]),
        ("lenet5", "lenet5", (28, 28), 10, {}, [[400, 120], [120, 84], [84, 10]]),
        ("lenet5_100", "lenet5", (28, 28), 100, {}, [[400, 120], [120, 84], [84, 100]]),
        ("lenet5_channels", "lenet5", (28, 28, 1), 10, {}, [[400, 120], [120, 84], [84, 10]]),
        ("resnet18", "resnet18", IMAGE, 10, {}, [[512, 512], [512, 10]]),
        ("resnet18_100", "resnet18", IMAGE, 100, {}, [[512, 512], [512, 100]]),
        ("resnet18_no_hidden", "resnet18", IMAGE, 10, {"head_units": ()}, [[512, 10]]),
        ("resnet34", "resnet34", IMAGE, 100, {}, [[512, 512], [512, 100]]),
        ("vgg16", "vgg16", IMAGE, 10, {}, [[512, 512], [512, 512], [512, 10]]),
        ("vgg16_100", "vgg16", IMAGE, 100, {}, [[512, 512], [512, 512], [512, 100]]),
        ("mobilenet", "mobilenet", IMAGE, 10, {}, [[1024, 10]]),
        ("mobilenet_100", "mobilenet", IMAGE, 100, {}, [[1024, 100]]),
        (
            "mobilenet_half_hidden",
            "mobilenet",
            IMAGE,
            10,
            {"width_multiplier": 0.5, "head_units": (256,)},
            [[512, 256], [256, 10]],
        ),
    )
    def test_build(self, name, input_shape, num_classes, kwargs, expected):
        model = build_model(name, input_shape, num_classes, **kwargs)
        self.assertIsInstance(model, keras_switch.SwitchingModel)
        self.assertLen(model.switchers, 1)
        self.assertEqual(switched_shapes(model), expected)
        names = [layer.name for layer in model.switched_layers]
        self.assertEqual(names, [f"fc{i}" for i in range(1, len(expected) + 1)])
        dense = [
            layer
            for layer in model.layers
            if isinstance(layer, keras_switch.SwitchedDense)
        ]
        self.assertLen(dense, len(expected))  # every SwitchedDense is switched
        x = np.random.uniform(size=(2, *input_shape)).astype("float32")
        self.assertEqual(model.predict(x, verbose=0).shape, (2, num_classes))

    @parameterized.named_parameters(*[(name, name) for name in MODELS])
    def test_uses_given_switcher(self, name):
        switcher = keras_switch.Switcher()
        input_shape = (28, 28) if name.startswith(("lenet", "vit")) else IMAGE
        model = MODELS[name](input_shape=input_shape, switcher=switcher)
        self.assertLen(model.switchers, 1)
        self.assertIs(model.switchers[0], switcher)

    @parameterized.named_parameters(
        ("lenet5", "lenet5", (28, 28), ["conv1", "conv2", "fc1", "fc2", "fc3"], 5),
        # The first conv, 13 depthwise and 13 pointwise convolutions, the head.
        ("mobilenet", "mobilenet", IMAGE, None, 28),
    )
    def test_all_switches_convolutions_too(self, name, input_shape, names, count):
        model = build_model(name, input_shape, 10, switched_layers="all")
        self.assertLen(model.switched_layers, count)
        if names:
            self.assertEqual([layer.name for layer in model.switched_layers], names)
        self.assertLen(model.switchers, 1)
        kinds = [type(layer).__name__ for layer in model.switched_layers]
        want = {"SwitchedConv2D", "SwitchedDense"}
        if name == "mobilenet":
            want.add("SwitchedDepthwiseConv2D")
            self.assertEqual(kinds.count("SwitchedDepthwiseConv2D"), 13)
        self.assertEqual(set(kinds), want)
        # Every switched layer strips to its plain class.
        plain = [type(layer).__name__ for layer in keras_switch.strip_switches(model).layers
                 if "Conv" in type(layer).__name__ or "Dense" in type(layer).__name__]
        self.assertEqual(plain, [kind[len("Switched"):] for kind in kinds])

    def test_unknown_switched_layers_raises(self):
        with self.assertRaisesRegex(ValueError, "switched_layers.*'conv'"):
            build_model("lenet5", (28, 28), 10, switched_layers="conv")

    def test_unknown_name_raises(self):
        with self.assertRaisesRegex(
            ValueError,
            r"invalid value for `model`, expected one of \['lenet300', 'lenet5', "
            r"'resnet18', 'resnet34', 'vgg16', 'mobilenet', 'vit'\]\. Received: model='foo'",
        ):
            build_model("foo", IMAGE, 10)

    @parameterized.named_parameters(("zero", 0), ("negative", -0.5), ("string", "1"))
    def test_mobilenet_invalid_width_multiplier_raises(self, value):
        with self.assertRaisesRegex(ValueError, "`width_multiplier`.*Received"):
            build_model("mobilenet", IMAGE, 10, width_multiplier=value)

    def test_lenet5_invalid_input_shape_raises(self):
        with self.assertRaisesRegex(ValueError, "`input_shape`.*Received"):
            build_model("lenet5", (784,), 10)


class TrainTest(TestCase):
    def test_resnet18_train_on_batch(self):
        model = resnet18(switcher=keras_switch.Switcher())
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            target_sparsity=0.5,
        )
        model.plan(total_steps=2)  # train_on_batch needs the run length: these two steps
        x = np.random.uniform(size=(4, *IMAGE)).astype("float32")
        y = np.random.randint(0, 10, size=(4,))
        for _ in range(2):
            logs = model.train_on_batch(x, y, return_dict=True)
        self.assertTrue(np.isfinite(logs["loss"]))
        self.assertEqual(int(model.switching_step.numpy()), 2)
        report = keras_switch.sparsity_report(model)
        self.assertAllClose(report["overall"], 0.5, atol=0.01)


if __name__ == "__main__":
    tf.test.main()
