"""The `keras-switch-train` console script (_keras_switch_train): its
--config resolution, from the checkout; and, in the slow tier (markers
`slow` and `wheel`), what `pip install 'keras-switch[cpu,train]'` gives a
user without a checkout: the wheel built and installed into a fresh venv
(tests/wheel_env.py, minutes), its console script run from a scratch
directory; and README's and the docs' examples run where only
`pip install 'keras-switch[cpu]'` was."""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import pytest
from absl.testing import absltest

import _keras_switch_train as cli
from tests import readme_test
from tests import wheel_env

ROOT = wheel_env.ROOT
SCRIPT = "import sys, _keras_switch_train as cli; sys.exit(cli.main())"


def _run(cmd, cwd, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env or wheel_env.clean_env(),
                          capture_output=True, text=True, timeout=600)


class ResolveConfigTest(absltest.TestCase):
    def test_a_shipped_config_by_name_or_checkout_path(self):
        shipped = os.path.join(ROOT, "configs", "lenet5_mnist.py")
        with tempfile.TemporaryDirectory() as scratch:
            self.addCleanup(os.chdir, os.getcwd())
            os.chdir(scratch)
            for value in ("lenet5_mnist", "lenet5_mnist.py", "configs/lenet5_mnist.py",
                          "./configs/lenet5_mnist.py"):
                self.assertEqual(cli.resolve_config(value, ROOT), shipped, value)
            # ml_collections' `file:argument` keeps its argument.
            self.assertEqual(cli.resolve_config("lenet5_mnist:x", ROOT), shipped + ":x")

    def test_an_existing_file_wins(self):
        with tempfile.TemporaryDirectory() as scratch:
            self.addCleanup(os.chdir, os.getcwd())
            os.chdir(scratch)
            with open("lenet5_mnist", "w") as f:
                f.write("")
            self.assertEqual(cli.resolve_config("lenet5_mnist", ROOT), "lenet5_mnist")

    def test_an_unknown_name_lists_the_shipped_configs(self):
        with self.assertRaisesRegex(ValueError, r"^--config=nope\.py: no such file.*"
                                    r"lenet300_fashion_mnist, lenet300_fashion_mnist_auto"):
            cli.resolve_config("nope.py", ROOT)
        self.assertNotIn("common", cli.shipped_configs(ROOT))

    def test_every_config_flag_form_is_resolved(self):
        shipped = os.path.join(ROOT, "configs", "lenet5_mnist.py")
        args = ["--config=lenet5_mnist", "-config", "lenet5_mnist", "--config.seed=1",
                "--workdir=w", "--", "--config=nope"]
        self.assertEqual(cli.resolve_argv(args, ROOT),
                         [f"--config={shipped}", "-config", shipped, "--config.seed=1",
                          "--workdir=w", "--", "--config=nope"])

    def test_the_checkout_runs_the_trainer_with_a_resolved_config(self):
        # Flag parsing only: an unknown key exits 2 before TensorFlow starts.
        with tempfile.TemporaryDirectory() as scratch:
            workdir = os.path.join(scratch, "run")
            env = dict(wheel_env.clean_env(), PYTHONPATH=ROOT)
            result = _run([sys.executable, "-c", SCRIPT, "--config=lenet5_mnist",
                           "--config.no_such_key=1", f"--workdir={workdir}"], scratch, env)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(os.path.join(ROOT, "configs", "lenet5_mnist.py"), result.stderr)
            self.assertFalse(os.path.exists(workdir))


@pytest.mark.slow
@pytest.mark.wheel
class WheelTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.python = wheel_env.venv_python()
        cls.script = os.path.join(os.path.dirname(cls.python), "keras-switch-train")
        scratch = tempfile.TemporaryDirectory()  # outside the checkout
        cls.addClassCleanup(scratch.cleanup)
        cls.scratch = scratch.name

    def test_the_wheel_ships_the_trainer_privately(self):
        with zipfile.ZipFile(wheel_env.build_wheel()) as wheel:
            names = wheel.namelist()
        top = {name.split("/")[0] for name in names if "/" in name}
        self.assertEqual({t for t in top if not t.endswith(".dist-info")},
                         {"keras_switch", "_keras_switch_train"})
        for name in ("trainers/train.py", "configs/common.py",
                     "configs/lenet300_fashion_mnist.py"):
            self.assertIn(f"_keras_switch_train/{name}", names)
        self.assertTrue(any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names)

    def test_help_names_the_flags(self):
        result = _run([self.script, "--help"], self.scratch)
        # absl's --help exits 1; `python -m trainers.train --help` does too.
        checkout = _run([sys.executable, "-m", "trainers.train", "--help"], ROOT,
                        dict(wheel_env.clean_env(), PYTHONPATH=ROOT))
        self.assertEqual(result.returncode, checkout.returncode, result.stderr)
        self.assertIn("--config", result.stdout)
        self.assertIn("--workdir", result.stdout)

    def test_an_unknown_config_exits_2_listing_the_shipped_ones(self):
        workdir = os.path.join(self.scratch, "X")
        result = _run([self.script, "--config=no_such_config", f"--workdir={workdir}"],
                      self.scratch)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("--config=no_such_config", result.stderr)
        self.assertIn("lenet300_fashion_mnist", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertFalse(os.path.exists(workdir))

    def test_a_shipped_config_trains(self):
        # Two epochs of LeNet-300-100 on generated MNIST-format files.
        from tests.helpers import write_split  # the checkout's numpy, not the venv's

        data = os.path.join(self.scratch, "data")
        os.makedirs(data)
        write_split(data, n_train=64, n_test=32)
        workdir = os.path.join(self.scratch, "run")
        result = _run([self.script, "--config=configs/lenet300_fashion_mnist.py",
                       f"--config.data_dir={data}", "--config.num_epochs=2",
                       "--config.batch_size=32", "--config.schedule.ramp_epochs=1",
                       "--config.schedule.freeze_epochs=1", "--config.schedule.switch_every=1",
                       f"--workdir={workdir}"],
                      self.scratch)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertTrue(os.path.exists(os.path.join(workdir, "report.json")))

    def test_the_library_imports(self):
        result = _run([self.python, "-c", "import keras_switch as ks; "
                       "print(ks.__version__ if hasattr(ks, '__version__') else 'ok')"],
                      self.scratch)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual(result.stdout.strip(), "0.1.0")


if __name__ == "__main__":
    absltest.main()


@pytest.mark.slow
@pytest.mark.wheel
class WheelDocsTest(readme_test.PageTestCase):
    """README's and every docs page's blocks run unchanged where only
    `pip install 'keras-switch[cpu]'` was run (README's install line): no
    checkout on the path, no test dependencies."""

    def test_readme_and_docs_run_from_the_cpu_install(self):
        python = wheel_env.venv_python("cpu")
        pages = [readme_test.README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
        for page in pages:
            if readme_test.runnable_blocks(page):
                with self.subTest(page=os.path.relpath(page, ROOT)):
                    self.assertPageRuns(page, python=python)
