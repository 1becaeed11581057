"""Test set-up shared by every test file.

The CPU is split into two logical devices before TensorFlow initialises, so
MirroredStrategy tests can run on one machine (distribute_test.py);
single-device tests use the default strategy and are unaffected.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import gc  # noqa: E402

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import keras  # noqa: E402, F401

# What TensorFlow and Keras create on import lives as long as the process:
# out of the collector's generations, no collection walks it again.
gc.freeze()

# absltest-based TestCases read absl flags (e.g. --test_tmpdir); under pytest
# nobody parses them.
from absl import flags  # noqa: E402

if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def pytest_collection_modifyitems(items):
    # tf.test.TestCase inherits a legacy `test_session` context manager that
    # pytest collects as a test and skips; it is not one of ours.
    items[:] = [item for item in items if item.name != "test_session"]
