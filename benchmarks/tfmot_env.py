"""Run the TFMOT magnitude-pruning baseline in its own Keras 2 environment.

TensorFlow Model Optimization Toolkit (TFMOT) only supports Keras 2
(`tf_keras`), and importing it sets `TF_USE_LEGACY_KERAS=1`, which switches
`tf.keras` to Keras 2 for the whole process. It must therefore never be
imported into a Keras 3 process. This module (standard library only, so it is
safe to import from one) creates a dedicated virtual environment and runs
`benchmarks/tfmot_baseline.py` there in a subprocess:

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
# Written after a successful install; holds PACKAGES so that changing the pins
# triggers a reinstall.
STAMP_NAME = ".ks-tfmot-installed"
TAIL_CHARS = 4000


def default_venv_path():
    """`$KS_TFMOT_VENV` if set, else `<repo>/.venv-tfmot`."""
    return Path(os.environ.get("KS_TFMOT_VENV") or REPO / ".venv-tfmot")


def _check_call(cmd):
    """Runs `cmd`; raises RuntimeError with the command and its output tail."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError(
            f"command failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"output tail:\n{proc.stdout[-TAIL_CHARS:]}"
        )


def ensure_venv(path=None):
    """Creates the TFMOT venv if needed and returns the path of its python.

    Installs exactly `PACKAGES` with pip (about a minute the first time); a
    stamp file makes later calls instant. Raises RuntimeError naming the failed
    command, with the tail of its output.
    """
    venv_dir = Path(path) if path else default_venv_path()
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
    """Runs `tfmot_baseline.py <args_list>` in the TFMOT venv; returns its JSON.

    `python` defaults to `ensure_venv()`. `--output` is added here (a temporary
    file). The child gets `TF_USE_LEGACY_KERAS=1`, `TF_CPP_MIN_LOG_LEVEL=2` and
    no `PYTHONPATH`, so it cannot pick up the parent's Keras 3 packages. Raises
    RuntimeError with the stderr tail on a non-zero exit, and
    subprocess.TimeoutExpired after `timeout` seconds.
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
    """One TFMOT run on `data` ((x, y), (x_test, y_test)) from the initial
    weights `init` (`get_weights()` order; random or pretrained): the result
    dict of `tfmot_baseline.py --mode=train`. The pruning ramp ends at 79% of
    the steps (3,705 of 4,690 for the 10-epoch budget), or at `end_fraction`
    of them, masks every `frequency` (100) steps, as in ../shared/anchors.md;
    the last ~2 epochs fine-tune at the target. `whole_model`:
    `prune_low_magnitude` on the whole model (every Conv2D and Dense layer),
    not only its Dense layers. `record_init`: the result also has
    `initial_weights_sha256`, the digests of the weights `fit` starts from
    (equal to `weights_sha256(init)` when TFMOT starts from `init`)."""
    # The optional arguments are passed only when set, so that the default
    # command line stays the one earlier results were made with.
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
