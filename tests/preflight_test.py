"""trainers/preflight.py: TensorFlow-free, and claiming the workdir.

The checks' messages are pinned through the binary in bad_input_test.py;
this file checks what it cannot see from outside: that importing the
module (and the binary's) loads no TensorFlow, and how config.json is
written and compared.
"""

import json
import os
import subprocess
import sys

import ml_collections
from absl.testing import absltest

from tests.helpers import ROOT
from tests.helpers import tree
from trainers import preflight

HEAVY = ("tensorflow", "keras", "keras_switch")


def _config(**overrides):
    return ml_collections.ConfigDict(
        {"model": "lenet300", "seed": 0, "switch_estimator": "sigmoid", **overrides}
    )


class ImportTest(absltest.TestCase):
    def test_imports_no_tensorflow(self):
        for module in ("trainers.preflight", "trainers.train"):
            loaded = subprocess.run(
                [sys.executable, "-c",
                 f"import sys, {module}; print(sorted({{m.split('.')[0] for m in "
                 f"sys.modules}} & set({HEAVY!r})))"],
                cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                capture_output=True, text=True, timeout=120,
            )
            self.assertEqual(loaded.returncode, 0, loaded.stderr)
            self.assertEqual(loaded.stdout.strip(), "[]", module)


class ClaimWorkdirTest(absltest.TestCase):
    def test_writes_config_json_then_accepts_the_same_config(self):
        workdir = os.path.join(self.create_tempdir().full_path, "a", "run")
        preflight.claim_workdir(_config(), workdir)
        with open(os.path.join(workdir, "config.json")) as f:
            self.assertEqual(json.load(f), _config().to_dict())
        before = tree(workdir)
        preflight.claim_workdir(_config(), workdir)
        self.assertEqual(tree(workdir), before)
        self.assertEqual(os.listdir(workdir), ["config.json"])  # no temporary file left

    def test_other_config_is_refused_naming_the_keys(self):
        workdir = self.create_tempdir().full_path
        preflight.claim_workdir(_config(), workdir)
        before = tree(workdir)
        with self.assertRaisesRegex(
            preflight.ConfigError,
            r"holds a run with a different config \(keys \['model', 'seed'\]\)\. "
            r"Use a new --workdir, or the same config to resume",
        ):
            preflight.claim_workdir(_config(seed=7, model="lenet5"), workdir)
        self.assertEqual(tree(workdir), before)

    def test_a_key_added_later_resumes_under_its_default_only(self):
        workdir = self.create_tempdir().full_path
        older = _config().to_dict()
        del older["switch_estimator"]
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(older, f)
        preflight.claim_workdir(_config(), workdir)
        with self.assertRaisesRegex(preflight.ConfigError, r"keys \['switch_estimator'\]"):
            preflight.claim_workdir(_config(switch_estimator="identity"), workdir)

    def test_a_key_set_to_none_that_config_json_lacks_is_named(self):
        workdir = self.create_tempdir().full_path
        preflight.claim_workdir(_config(), workdir)
        with self.assertRaisesRegex(
            preflight.ConfigError,
            r"\(keys \['accuracy_budget'\]\)\. .*Received: "
            r"config\.accuracy_budget=None \(its config\.json: '<absent>'\)$",
        ):
            preflight.claim_workdir(_config(accuracy_budget=None), workdir)

    def test_a_file_is_refused(self):
        path = self.create_tempfile("run").full_path
        with self.assertRaisesRegex(
            preflight.ConfigError,
            r"--workdir=.*/run is an existing file; expected a directory",
        ):
            preflight.claim_workdir(_config(), path)


class CheckTest(absltest.TestCase):
    def test_tf_config_accepted(self):
        cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
        for task in ({"type": "chief", "index": 0}, {"type": "worker", "index": 1},
                     {"type": "evaluator", "index": 0}):
            preflight.check_tf_config(json.dumps({"cluster": cluster, "task": task}))
        preflight.check_tf_config(None)
        preflight.check_tf_config("  ")

    def test_tf_config_refused(self):
        cluster = {"worker": ["a:1"]}
        for tf_config, why in (
            ([1], r"is a JSON list, not an object"),
            ({"cluster": {"worker": ["a"]}, "task": {}}, r'"cluster"\."worker" is not a '
                                                        r'non-empty list of "host:port"'),
            ({"cluster": cluster, "task": {"type": "ps", "index": 0}},
             r'"task"\."type"=\'ps\' is not a job of "cluster" \[\'worker\'\]'),
            ({"cluster": cluster, "task": {"type": "worker", "index": True}},
             r'"task"\."index"=True is not an integer'),
        ):
            with self.assertRaisesRegex(preflight.ConfigError, rf"^TF_CONFIG {why}; "):
                preflight.check_tf_config(json.dumps(tf_config))

    def test_workdir_that_can_be_created(self):
        parent = self.create_tempdir().full_path
        preflight.check_workdir(os.path.join(parent, "not", "yet"))
        self.assertEqual(os.listdir(parent), [])  # nothing is created

    def test_strategy(self):
        preflight.check_strategy("multi_worker")
        with self.assertRaisesRegex(
            preflight.ConfigError,
            r"--strategy must be one of \('auto', 'one_device', 'mirrored', "
            r"'multi_worker', 'data_parallel'\)\. Received: 'tpu'",
        ):
            preflight.check_strategy("tpu")

    def test_strategy_of_the_other_backend(self):
        preflight.check_strategy("data_parallel", "jax")
        preflight.check_strategy("auto", "jax")
        with self.assertRaisesRegex(preflight.ConfigError,
                                    r"--strategy=mirrored does not run on the jax backend.*"
                                    r"\('auto', 'one_device', 'data_parallel'\)"):
            preflight.check_strategy("mirrored", "jax")
        with self.assertRaisesRegex(preflight.ConfigError,
                                    r"--strategy=data_parallel does not run on the tensorflow"):
            preflight.check_strategy("data_parallel", "tensorflow")
        preflight.check_strategy("one_device", "torch")
        with self.assertRaisesRegex(preflight.ConfigError,
                                    r"--strategy=data_parallel does not run on the torch"):
            preflight.check_strategy("data_parallel", "torch")
        with self.assertRaisesRegex(preflight.ConfigError, r"KERAS_BACKEND='numpy'"):
            preflight.check_strategy("auto", "numpy")


if __name__ == "__main__":
    absltest.main()
