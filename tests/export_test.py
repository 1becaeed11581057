import keras
import numpy as np
import tensorflow as tf

import keras_switch
from keras_switch import SwitchedDense
from keras_switch import Switcher
from tests.helpers import SubclassedNet
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mlp


class SparsityReportTest(TestCase):
    def test_hand_set_masks(self):
        model = mlp(units=(3,), num_classes=2, input_dim=4)
        first, second = model.switched_layers
        first.freeze_mask(np.array([[1, 0, 0]] * 4, "float32"))  # 4 of 12 on
        second.freeze_mask(np.ones((3, 2), "float32"))  # 6 of 6 on
        report = keras_switch.sparsity_report(model)
        expected = [
            {"name": first.name, "shape": [4, 3], "nonzeros": 4, "sparsity": 8 / 12},
            {"name": second.name, "shape": [3, 2], "nonzeros": 6, "sparsity": 0.0},
        ]
        self.assertLen(report["layers"], 2)
        for got, want in zip(report["layers"], expected):
            self.assertAlmostEqual(got.pop("sparsity"), want.pop("sparsity"))
            self.assertEqual(got, want)
        self.assertAlmostEqual(report["overall"], 8 / 18)

    def test_no_switched_layers(self):
        model = keras.Sequential([keras.Input((3,)), SwitchedDense(2)])
        self.assertEqual(keras_switch.sparsity_report(model), {"layers": [], "overall": 0.0})


class StripSwitchesTest(TestCase):
    def _trained(self):
        model = compile_for_classes(mlp(), target_sparsity=0.7)
        (x, y), (xt, _) = digits(512)
        model.fit(x, y, batch_size=64, epochs=2, verbose=0)
        return model, xt

    def _assert_plain(self, stripped):
        for layer in stripped._flatten_layers():
            self.assertNotIsInstance(layer, (SwitchedDense, Switcher))
        self.assertNotIsInstance(stripped, keras_switch.SwitchingModel)

    def test_functional(self):
        model, x = self._trained()
        stripped = keras_switch.strip_switches(model)
        self._assert_plain(stripped)
        self.assertAllClose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
        kernels = [l.kernel for l in stripped.layers if isinstance(l, keras.layers.Dense)]
        zeros = sum(int(np.sum(k.numpy() == 0)) for k in kernels)
        entries = sum(int(np.prod(k.shape)) for k in kernels)
        self.assertAlmostEqual(zeros / entries, keras_switch.sparsity_report(model)["overall"])

    def test_nested_sequential(self):
        switcher = Switcher()
        body = keras.Sequential(
            [keras.Input((64,)), SwitchedDense(8, activation="relu", switcher=switcher),
             keras.layers.Dropout(0.1), SwitchedDense(10, switcher=switcher)]
        )
        inputs = keras.Input((64,))
        model = keras_switch.SwitchingModel(inputs, body(inputs))
        model.switched_layers[0].freeze_mask(
            (np.random.RandomState(0).uniform(size=(64, 8)) > 0.5).astype("float32")
        )
        stripped = keras_switch.strip_switches(model)
        self._assert_plain(stripped)
        x = digits(100)[0][0]
        self.assertAllClose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    def test_subclassed_raises(self):
        model = SubclassedNet()
        model(np.ones((1, 64), "float32"))
        with self.assertRaisesRegex(ValueError, "freeze_switches"):
            keras_switch.strip_switches(model)


if __name__ == "__main__":
    tf.test.main()
