"""What a run writes for TensorBoard: read from the event files, and served
by a real `tensorboard` server on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.helpers import idx_data_dir
from tests.helpers import small_config
from tests.test_case import TestCase
from trainers import train_lib

LAYERS = ("fc1", "fc2", "fc3")
KERAS_SCALARS = {
    "train": {"epoch_loss", "epoch_accuracy", "epoch_sparsity", "epoch_switch_loss",
              "epoch_learning_rate"},
    "validation": {"epoch_loss", "epoch_accuracy"},
}
SWITCH_SCALARS = {f"sparsity/{name}" for name in LAYERS} | {
    "sparsity/overall", "learning_rate/task", "learning_rate/switch", "phase"
}
SWITCH_HISTOGRAMS = {f"{kind}/{name}" for kind in ("switch_probability", "masked_weights")
                     for name in LAYERS}
SWITCH_IMAGES = {f"mask/{name}" for name in LAYERS}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoardTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        data_dir = idx_data_dir(cls, n_train=64, n_test=16)
        run = tempfile.TemporaryDirectory()
        cls.addClassCleanup(run.cleanup)
        cls.workdir = run.name
        train_lib.train_and_evaluate(small_config(data_dir), cls.workdir)
        cls.logdir = os.path.join(cls.workdir, "tensorboard")

    def _tags(self, run):
        accumulator = event_accumulator.EventAccumulator(
            os.path.join(self.logdir, run), size_guidance={"tensors": 0}
        )
        accumulator.Reload()
        return accumulator

    def test_event_files_hold_every_tag(self):
        for run, tags in KERAS_SCALARS.items():
            self.assertContainsSubset(tags, set(self._tags(run).Tags()["tensors"]), run)
        switches = self._tags("switches")
        tags = set(switches.Tags()["tensors"])
        self.assertContainsSubset(SWITCH_SCALARS | SWITCH_HISTOGRAMS | SWITCH_IMAGES, tags)
        # One value per epoch; the last overall sparsity is the target.
        overall = switches.Tensors("sparsity/overall")
        self.assertLen(overall, 3)
        self.assertAlmostEqual(float(tf.make_ndarray(overall[-1].tensor_proto)), 0.9, delta=0.01)
        phases = [float(tf.make_ndarray(e.tensor_proto)) for e in switches.Tensors("phase")]
        self.assertEqual(phases, [1.0, 1.0, 2.0])  # two switching epochs, a frozen one

    def test_real_server_serves_the_tags(self):
        port = _free_port()
        binary = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        server = subprocess.Popen(
            [binary, "--logdir", self.logdir, "--host", "127.0.0.1", "--port", str(port),
             "--load_fast", "false", "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            scalars = self._get(port, "scalars", lambda tags: "switches" in tags)
            histograms = self._get(port, "histograms", lambda tags: "switches" in tags)
            images = self._get(port, "images", lambda tags: "switches" in tags)
        finally:
            server.terminate()
            server.wait(timeout=30)
        for run, tags in KERAS_SCALARS.items():
            self.assertContainsSubset(tags, set(scalars[run]))
        self.assertContainsSubset(SWITCH_SCALARS, set(scalars["switches"]))
        self.assertContainsSubset(SWITCH_HISTOGRAMS, set(histograms["switches"]))
        self.assertContainsSubset(SWITCH_IMAGES, set(images["switches"]))

    def _get(self, port, plugin, ready, timeout=90):
        """GETs /data/plugin/<plugin>/tags from the server until `ready`."""
        url = f"http://127.0.0.1:{port}/data/plugin/{plugin}/tags"
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    tags = json.load(response)
                if ready(tags):
                    return tags
            except OSError:
                pass
            if time.time() > deadline:
                self.fail(f"TensorBoard did not serve {url} in {timeout} s")
            time.sleep(0.5)


if __name__ == "__main__":
    tf.test.main()
