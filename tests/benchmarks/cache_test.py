"""benchmarks.harness.cache: a run is reused only while its key (code,
config, data) holds, and trained again when any part changes or its file
holds no key."""

import json
import os

import numpy as np
import tensorflow as tf

from benchmarks.harness import cache
from tests.test_case import TestCase

DATA = {"dir": "/data", "sha256": "a" * 64}


class RunCacheTest(TestCase):
    def setUp(self):
        super().setUp()
        self.output_dir = self.create_tempdir().full_path
        self.source = os.path.join(self.create_tempdir().full_path, "protocol.py")
        with open(self.source, "w") as f:
            f.write("STEPS = 1\n")
        self.trained = 0

    def tearDown(self):
        cache.code_digest.cache_clear()
        super().tearDown()

    def _cache(self, data=DATA, rerun=False):
        cache.code_digest.cache_clear()
        return cache.RunCache(self.output_dir, "test", data, rerun=rerun,
                              sources=(self.source,))

    def _train(self):
        self.trained += 1
        return {"test_accuracy": 0.5 + self.trained / 100, "sparsity": 0.9,
                "train_seconds": 1.0}

    def test_a_run_is_reused_while_its_key_holds(self):
        first = self._cache().run("run", {"seed": 0, "recipe": (1, 2)}, self._train,
                                  {"seed": 0})
        self.assertEqual(first["seed"], 0)
        # Tuples come back from JSON as lists: the same key.
        again = self._cache().run("run", {"seed": 0, "recipe": [1, 2]}, self._train)
        self.assertEqual(again, first)
        self.assertEqual(self.trained, 1)
        with open(os.path.join(self.output_dir, "runs", "run.json")) as f:
            stored = json.load(f)
        self.assertEqual(stored["result"], first)
        self.assertEqual(stored["key"]["data"], DATA)
        self.assertEqual(stored["key"]["config"], {"seed": 0, "recipe": [1, 2]})
        self.assertLen(stored["key"]["code"], 64)

    def test_a_changed_config_data_or_code_trains_again(self):
        config = {"seed": 0}
        self._cache().run("run", config, self._train)
        self._cache().run("run", {"seed": 1}, self._train)
        self.assertEqual(self.trained, 2)
        self._cache(data=dict(DATA, sha256="b" * 64)).run("run", {"seed": 1}, self._train)
        self.assertEqual(self.trained, 3)
        with open(self.source, "a") as f:
            f.write("STEPS = 2\n")
        result = self._cache(data=dict(DATA, sha256="b" * 64)).run("run", {"seed": 1},
                                                                   self._train)
        self.assertEqual(self.trained, 4)
        self.assertAlmostEqual(result["test_accuracy"], 0.54)

    def test_docstrings_comments_and_layout_do_not_train_again(self):
        self._cache().run("run", {"seed": 0}, self._train)
        with open(self.source, "w") as f:
            f.write('"""The protocol."""\n\n# One step.\nSTEPS = (\n    1)\n\n\n'
                    'def f():\n    """Says why."""\n    return STEPS\n')
        self._cache().run("run", {"seed": 0}, self._train)
        self.assertEqual(self.trained, 2)  # a function was added: code changed
        with open(self.source, "w") as f:
            f.write("STEPS = 1\n\n\ndef f():\n    return STEPS  # unchanged\n")
        self._cache().run("run", {"seed": 0}, self._train)
        self.assertEqual(self.trained, 2)
        with open(self.source, "w") as f:
            f.write("STEPS = 1\n\n\ndef f():\n    return -STEPS\n")
        self._cache().run("run", {"seed": 0}, self._train)
        self.assertEqual(self.trained, 3)

    def test_a_file_without_a_key_or_rerun_trains_again(self):
        path = os.path.join(self.output_dir, "runs", "run.json")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump({"test_accuracy": 0.1}, f)  # a run written before keys
        result = self._cache().run("run", {"seed": 0}, self._train)
        self.assertEqual(self.trained, 1)
        self.assertAlmostEqual(result["test_accuracy"], 0.51)
        self._cache(rerun=True).run("run", {"seed": 0}, self._train)
        self.assertEqual(self.trained, 2)

    def test_arrays_are_kept_beside_the_result(self):
        weights = [np.arange(6, dtype="float32").reshape(2, 3), np.ones(3, "float32")]

        def train():
            self.trained += 1
            return {"test_accuracy": 0.9}, weights

        first = self._cache().run("pre", {"seed": 0}, train, {"method": "dense"}, arrays=True)
        result, arrays = self._cache().run("pre", {"seed": 0}, train, arrays=True)
        self.assertEqual(self.trained, 1)
        self.assertEqual(result, {"test_accuracy": 0.9, "method": "dense"})
        self.assertEqual(first[0], result)
        for got, want in zip(arrays, weights):
            self.assertAllEqual(got, want)
        os.remove(os.path.join(self.output_dir, "runs", "pre.npz"))
        self._cache().run("pre", {"seed": 0}, train, arrays=True)
        self.assertEqual(self.trained, 2)

    def test_code_digest_covers_the_library(self):
        digest = cache.code_digest()
        self.assertEqual(digest, cache.code_digest(cache.CODE))
        self.assertNotEqual(digest, cache.code_digest(cache.CODE[1:]))


if __name__ == "__main__":
    tf.test.main()
