"""Test set-up shared by every test file.

The CPU is split into two logical devices before TensorFlow initialises, so
MirroredStrategy tests can run on one machine (distribute_test.py);
single-device tests use the default strategy and are unaffected.

The Keras backend is KERAS_BACKEND's (TensorFlow when unset). On JAX, the
CPU is split into two devices too (keras.distribution.DataParallel tests),
and compiled steps are cached on disk: most tests train the same small
networks, which XLA would otherwise compile again for each test.
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if os.environ["KERAS_BACKEND"] == "jax":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=2").strip()
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                          os.path.join(tempfile.gettempdir(), "keras-switch-tests-jax-cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

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
