"""The TensorFlow files of a run's export/: the stripped model as a
SavedModel, `keras_switch.export_sparse`'s sparse SavedModel and
`keras_switch.export_tflite`'s TFLite file.

They are written by Keras' TensorFlow backend. A run on another backend
saves its switched model to a `.keras` file (which loads on every backend
with identical predictions and masks) and has a TensorFlow-backend process
write them from it:

    python -m trainers.tf_export SWITCHED.keras DIRECTORY

which prints `export_sparse`'s per-layer table as one line of JSON.
"""

import json
import os
import subprocess
import sys


def write(model, directory):
    """Writes saved_model/, sparse/ and model.tflite of the switched `model`
    into `directory`; returns `export_sparse`'s "layers". Needs the
    TensorFlow backend."""
    import keras_switch

    stripped = keras_switch.strip_switches(model)
    stripped.export(os.path.join(directory, "saved_model"), verbose=False)
    sparse = keras_switch.export_sparse(model, os.path.join(directory, "sparse"))
    keras_switch.export_tflite(model, os.path.join(directory, "model.tflite"))
    return sparse["layers"]


def write_elsewhere(model, directory):
    """`write`, from a Keras backend other than TensorFlow: through a
    `.keras` file and a TensorFlow-backend process.

    Raises:
        RuntimeError: when that process fails (its last output quoted).
    """
    path = os.path.join(directory, ".switched.keras")
    model.save(path)
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        done = subprocess.run([sys.executable, "-m", __name__, path, directory], env=env,
                              capture_output=True, text=True)
    finally:
        os.remove(path)
    if done.returncode != 0:
        raise RuntimeError(
            "Writing the TensorFlow exports (SavedModel, sparse SavedModel, TFLite) in "
            f"a TensorFlow-backend process failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: python -m {__name__} SWITCHED.keras DIRECTORY")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    import keras_switch  # noqa: F401 - registers the switched classes

    model = keras.saving.load_model(argv[1])
    print(json.dumps(write(model, argv[2])))


if __name__ == "__main__":
    main(sys.argv)
