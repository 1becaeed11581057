"""What keras_switch promises across Keras backends (TensorFlow, JAX,
PyTorch): `.keras` files that load on every backend with identical
predictions and masks, JAX's `keras.distribution.DataParallel` training as
one device does, the trainer on each backend, and exports that say clearly
where they need TensorFlow.

This file runs in each backend's test process (`make test`); the other
backends are reached through subprocesses.
"""

import json
import os
import subprocess
import sys
import unittest

import keras
import numpy as np

import keras_switch
from keras_switch import SwitchSchedule
from keras_switch.backend import SUPPORTED
from tests.helpers import idx_data_dir
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = keras.backend.backend()

# Loads a .keras file on the subprocess's backend; writes its predictions on
# the saved inputs, its masks and its step counter.
_LOAD = """
import sys
import keras
import numpy as np
import keras_switch  # registers the classes
directory = sys.argv[1]
model = keras.saving.load_model(directory + "/model.keras")
x = np.load(directory + "/inputs.npy")
np.savez(directory + "/loaded.npz", predictions=model.predict(x, verbose=0),
         step=keras.ops.convert_to_numpy(model.switching_step),
         **{f"mask_{i}": keras.ops.convert_to_numpy(layer.mask)
            for i, layer in enumerate(model.switched_layers)})
"""


def _on_backend(backend, code, *args):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


class KerasFilesAcrossBackendsTest(TestCase):
    def test_a_trained_model_loads_on_every_backend_as_it_was(self):
        (x, y), (x_test, _) = digits(256)
        model = compile_for_classes(mlp(), target_sparsity=0.8,
                                    schedule=SwitchSchedule(switch_every=2, freeze_step=6))
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 8 steps: frozen at 6
        directory = self.create_tempdir().full_path
        model.save(os.path.join(directory, "model.keras"))
        np.save(os.path.join(directory, "inputs.npy"), x_test[:32])
        predictions = model.predict(x_test[:32], verbose=0)
        masks = [keras.ops.convert_to_numpy(layer.mask) for layer in model.switched_layers]
        self.assertGreater(keras_switch.sparsity_report(model)["overall"], 0.7)
        for backend in SUPPORTED:
            with self.subTest(saved_on=BACKEND, loaded_on=backend):
                done = _on_backend(backend, _LOAD, directory)
                self.assertEqual(done.returncode, 0, done.stderr[-2000:])
                loaded = np.load(os.path.join(directory, "loaded.npz"))
                self.assertAllClose(loaded["predictions"], predictions, atol=1e-6, rtol=0)
                self.assertEqual(int(loaded["step"]), 8)
                for i, mask in enumerate(masks):
                    self.assertAllEqual(loaded[f"mask_{i}"], mask)


class ExportElsewhereTest(TestCase):
    def test_exports_name_the_backend_they_need(self):
        if BACKEND == "tensorflow":
            self.skipTest("the exports run on TensorFlow (export_test.py)")
        model = mlp()
        directory = os.path.join(self.create_tempdir().full_path, "out")
        for export in (keras_switch.export_sparse, keras_switch.export_tflite):
            with self.assertRaisesRegex(RuntimeError, f"needs the TensorFlow backend.*"
                                        f"KERAS_BACKEND='{BACKEND}'.*model.keras"):
                export(model, directory)
            self.assertFalse(os.path.exists(directory))


class DataParallelTest(TestCase):
    def _train(self, distribution):
        (x, y), (x_test, _) = digits(256)
        if distribution is not None:
            keras.distribution.set_distribution(distribution)
        try:
            keras.utils.set_random_seed(1)
            model = compile_for_classes(mlp(), target_sparsity=0.8, optimizer="sgd",
                                        schedule=SwitchSchedule(switch_every=2, warmup_steps=2,
                                                                freeze_step=12))
            history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
            return (model.predict(x_test[:32], verbose=0),
                    [keras.ops.convert_to_numpy(l.mask) for l in model.switched_layers],
                    history.history)
        finally:
            keras.distribution.set_distribution(None)

    def test_two_devices_train_as_one(self):
        if BACKEND != "jax":
            self.skipTest("keras.distribution is JAX's (tf.distribute: distribute_test.py)")
        import jax

        devices = jax.devices()
        self.assertLen(devices, 2)  # conftest.py splits the CPU
        one = self._train(None)
        two = self._train(keras.distribution.DataParallel(devices=devices))
        self.assertAllClose(two[0], one[0], atol=1e-5, rtol=0)
        for single, parallel in zip(one[1], two[1]):
            self.assertAllEqual(parallel, single)
        for key in one[2]:
            self.assertAllClose(two[2][key], one[2][key], atol=1e-5, rtol=0)
        self.assertGreater(1.0 - float(np.mean(np.concatenate([m.ravel() for m in one[1]]))), 0.7)


class ReadmeQuickstartTest(TestCase):
    def test_the_quickstart_runs_as_written_on_this_backend(self):
        if BACKEND == "tensorflow":
            self.skipTest("readme_test.py runs every README block on TensorFlow")
        from tests import readme_test

        with open(readme_test.README, encoding="utf-8") as f:
            text = f.read()
        start = text.index("## Quickstart")
        quickstart = text[start:text.index("\n## ", start + 1)]
        self.assertIn("```python", quickstart)
        page = os.path.join(self.create_tempdir().full_path, "quickstart.md")
        with open(page, "w", encoding="utf-8") as f:
            f.write(quickstart)
        readme_test.PageTestCase.assertPageRuns(self, page)


@unittest.skipIf(BACKEND == "tensorflow", "trainer_test.py runs the binary on TensorFlow")
class TrainerOnThisBackendTest(TestCase):
    """The binary with KERAS_BACKEND=jax or torch (tf.data still feeds it)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = idx_data_dir(cls, n_train=96, n_test=40)

    def _run(self, workdir, *flags):
        args = [f"--workdir={workdir}", "--config=configs/lenet300_fashion_mnist.py",
                f"--config.data_dir={self.data_dir}", "--config.num_epochs=3",
                "--config.batch_size=32", "--config.schedule.ramp_epochs=1",
                "--config.schedule.freeze_epochs=1", "--config.schedule.switch_every=1", *flags]
        env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("XLA_FLAGS", None)
        return subprocess.run([sys.executable, "-m", "trainers.train", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)

    def test_single_device_and_data_parallel_runs(self):
        runs = [("one", ())]
        if BACKEND == "jax":  # keras.distribution is JAX's
            runs.append(("two", ("--strategy=data_parallel", "--cpu_devices=2")))
        reports = {}
        for name, flags in runs:
            workdir = os.path.join(self.create_tempdir().full_path, "run")
            done = self._run(workdir, *flags)
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            for path in ("config.json", "report.json", "checkpoints/state.json",
                         "export/model.keras", "export/saved_model/saved_model.pb",
                         "export/sparse/saved_model.pb", "export/model.tflite"):
                self.assertTrue(os.path.exists(os.path.join(workdir, path)), path)
            self.assertFalse(os.path.exists(os.path.join(workdir, "export", ".switched.keras")))
            with open(os.path.join(workdir, "report.json")) as f:
                reports[name] = json.load(f)
        for report in reports.values():
            self.assertEqual(report["keras_backend"], BACKEND)
            self.assertEqual(report["steps"], 9)
            self.assertAlmostEqual(report["fc_sparsity"], 0.9, delta=0.01)
            self.assertIsNone(report["target_shortfall"])
        if BACKEND == "jax":
            self.assertIn("over 2 replica(s)", done.stdout)
            self.assertEqual(reports["two"]["layers"], reports["one"]["layers"])
            self.assertAlmostEqual(reports["two"]["test_accuracy"],
                                   reports["one"]["test_accuracy"])

    def test_a_strategy_of_another_backend_is_bad_input(self):
        others = ["mirrored"] + (["data_parallel"] if BACKEND == "torch" else [])
        for strategy in others:
            with self.subTest(strategy=strategy):
                workdir = os.path.join(self.create_tempdir().full_path, "run")
                done = self._run(workdir, f"--strategy={strategy}")
                self.assertEqual(done.returncode, 2, done.stderr[-2000:])
                self.assertIn(f"--strategy={strategy} does not run on the {BACKEND} backend",
                              done.stderr)
                self.assertFalse(os.path.exists(workdir))


if __name__ == "__main__":
    unittest.main()
