"""benchmarks.demo: docs/trainer.md and each config's docstring quote the committed
run of that config (benchmarks/results/demo/<config>.json), and the script
itself runs (slow: it trains)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from benchmarks.demo import command
from benchmarks.demo import quote
from tests.helpers import ROOT
from tests.helpers import write_split
from tests.test_case import TestCase

RESULTS = os.path.join(ROOT, "benchmarks", "results", "demo")
CONFIGS = ("lenet300_fashion_mnist", "lenet5_fashion_mnist", "vit_fashion_mnist")


def _flat(text):
    return " ".join(text.split())


class QuotedFiguresTest(TestCase):
    def test_the_trainer_page_and_docstrings_quote_the_committed_runs(self):
        with open(os.path.join(ROOT, "docs", "trainer.md")) as f:
            page = _flat(f.read())
        for config in CONFIGS:
            with self.subTest(config=config):
                with open(os.path.join(RESULTS, config + ".json")) as f:
                    payload = json.load(f)
                report = payload["report"]
                self.assertEqual(payload["command"], " ".join(command(config)))
                with open(os.path.join(ROOT, "configs", config + ".py")) as f:
                    docstring = _flat(f.read().split('"""')[1])
                seconds = f"{report['train_seconds']:.0f} s of training"
                for where, text in (("docs/trainer.md", page), (config, docstring)):
                    self.assertIn(quote(report), text, where)
                    self.assertIn(seconds, text, where)
                    self.assertIn(f"benchmarks/results/demo/{config}.json", text, where)
                self.assertIn(payload["command"], docstring)


@pytest.mark.slow
class ScriptTest(TestCase):
    def test_writes_the_report_with_its_command(self):
        data = self.create_tempdir().full_path
        write_split(data, n_train=64, n_test=16)
        out = self.create_tempdir().full_path
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.demo", "--configs=lenet300_fashion_mnist",
             f"--output_dir={out}",
             f"--extra_flags=--config.data_dir={data},--config.num_epochs=2,"
             "--config.batch_size=32,--config.schedule.ramp_epochs=1,"
             "--config.schedule.freeze_epochs=1,--config.schedule.switch_every=1"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(out, "lenet300_fashion_mnist.json")) as f:
            payload = json.load(f)
        self.assertTrue(payload["command"].startswith(
            "python -m trainers.train --config=configs/lenet300_fashion_mnist.py "
            "--workdir=/tmp/lenet300_fashion_mnist --config.data_dir="))
        self.assertEqual(payload["report"]["epochs"], 2)
        self.assertIn(quote(payload["report"]), result.stdout)


if __name__ == "__main__":
    tf.test.main()
