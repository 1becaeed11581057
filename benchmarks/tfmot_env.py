"""Run the TFMOT magnitude-pruning baseline in its own Keras 2 environment.

TFMOT only supports Keras 2 and switches `tf.keras` to it for the whole
process, so this module (standard library only) makes a dedicated venv and
runs `benchmarks/tfmot_baseline.py` there in a subprocess:

    from benchmarks import tfmot_env
    result = tfmot_env.run(["--data=fmnist.npz", "--model=lenet300",
                            "--target=0.95", "--seed=0"])
    result["test_accuracy"], result["fc_sparsity"]

The venv lives at `$KS_TFMOT_VENV` if set, else `<repo>/.venv-tfmot`.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINE_SCRIPT = Path(__file__).resolve().with_name("tfmot_baseline.py")
PACKAGES = (
    "tensorflow-cpu==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "numpy",
)
# Holds PACKAGES after an install: changing the pins reinstalls.
STAMP_NAME = ".ks-tfmot-installed"
TAIL_CHARS = 4000


def _check_call(cmd):
    """Runs `cmd`; raises RuntimeError with the command and its output tail."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError(
            f"command failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"output tail:\n{proc.stdout[-TAIL_CHARS:]}"
        )


def ensure_venv(path=None):
    """The path of the TFMOT venv's python, installing `PACKAGES` first
    unless its stamp file holds them.

    Raises:
        RuntimeError: naming the failed command, with its output tail.
    """
    venv_dir = Path(path or os.environ.get("KS_TFMOT_VENV") or REPO / ".venv-tfmot")
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / STAMP_NAME
    wanted = "\n".join(PACKAGES) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    if not python.exists():
        _check_call([sys.executable, "-m", "venv", str(venv_dir)])
    _check_call([str(python), "-m", "pip", "install", "--quiet", *PACKAGES])
    stamp.write_text(wanted)
    return str(python)


def run(args_list, python=None, timeout=None):
    """Runs `tfmot_baseline.py <args_list> --output=<tmp>` with `python`
    (default `ensure_venv()`), without PYTHONPATH; returns its JSON.

    Raises:
        RuntimeError: with the stderr tail, on a non-zero exit.
        subprocess.TimeoutExpired: after `timeout` seconds.
    """
    python = python or ensure_venv()
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="ks-tfmot-") as tmp:
        output = Path(tmp) / "result.json"
        cmd = [python, str(BASELINE_SCRIPT), *map(str, args_list), f"--output={output}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise RuntimeError(
                f"TFMOT baseline failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"stderr tail:\n{proc.stderr[-TAIL_CHARS:]}"
            )
        return json.loads(output.read_text())


def _run_on(data, init, args_list):
    """`run(args_list)` with `--data=` an .npz of `data` ((x, y), (x_test,
    y_test)) and the weights `init` (init_0, init_1, ...)."""
    import numpy as np  # the parent process has numpy; this module's import does not need it

    (x, y), (xt, yt) = data
    with tempfile.TemporaryDirectory(prefix="ks-tfmot-data-") as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt,
                 **{f"init_{i}": w for i, w in enumerate(init)})
        return run([f"--data={path}", *args_list])


def weights_sha256(weights):
    """SHA-256 hex digest of each array's float32 bytes: what
    `tfmot_baseline.py --record_init` writes as `initial_weights_sha256`."""
    import numpy as np

    return [hashlib.sha256(np.ascontiguousarray(w, np.float32).tobytes()).hexdigest()
            for w in weights]


def train(model, target, seed, data, init, epochs, batch_size, learning_rate,
          frequency=100, end_fraction=None, whole_model=False, record_init=False):
    """One TFMOT run on `data` ((x, y), (x_test, y_test)) from the weights
    `init` (`get_weights()` order): the result of `tfmot_baseline.py
    --mode=train`, its flags set from these arguments (the optional ones only
    when given; its default ramp ends at 79% of the steps)."""
    extra = [] if end_fraction is None else [f"--end_fraction={end_fraction}"]
    extra += ["--whole_model"] if whole_model else []
    extra += ["--record_init"] if record_init else []
    return _run_on(data, init, [
        f"--model={model}", f"--target={target}", f"--seed={seed}", f"--epochs={epochs}",
        f"--batch_size={batch_size}", f"--learning_rate={learning_rate}",
        f"--frequency={frequency}", *extra])


def step_time(model, batch_size, data, init):
    """TFMOT vs Keras 2 Dense steady-state step time (interleaved in the
    TFMOT process): the result dict of `tfmot_baseline.py --mode=step_time`."""
    return _run_on(data, init, [f"--model={model}", "--mode=step_time",
                                f"--batch_size={batch_size}"])
