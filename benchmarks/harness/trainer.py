"""The training binary (`python -m trainers.train`) run in a fresh process,
for the benchmarks that measure it as a user runs it. It imports no
TensorFlow."""

import json
import os
import subprocess
import sys

from benchmarks.harness import report


def run(args, workdir):
    """Runs `python -m trainers.train ARGS` (which names `--workdir=WORKDIR`)
    from the repository root, with this Python, the checkout first on
    PYTHONPATH and TensorFlow's logs quiet; returns WORKDIR/report.json.

    Raises:
        RuntimeError: with the command and its stderr tail, when it fails.
    """
    command = [sys.executable, "-m", "trainers.train", *args]
    path = os.pathsep.join(filter(None, [report.ROOT, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    result = subprocess.run(command, cwd=report.ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    with open(os.path.join(workdir, "report.json")) as f:
        return json.load(f)
