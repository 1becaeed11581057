import numpy as np
import tensorflow as tf

import keras_switch
from keras_switch.models import lenet_300_100
from tests.test_case import TestCase


class LeNetTest(TestCase):
    def test_lenet_300_100(self):
        model = lenet_300_100()
        self.assertIsInstance(model, keras_switch.SwitchingModel)
        shapes = [r["shape"] for r in keras_switch.sparsity_report(model)["layers"]]
        self.assertEqual(shapes, [[784, 300], [300, 100], [100, 10]])
        self.assertLen(model.switchers, 1)
        self.assertEqual(model.predict(np.zeros((2, 28, 28)), verbose=0).shape, (2, 10))


if __name__ == "__main__":
    tf.test.main()
