"""--init_from: warm-start the new network from a `.keras` model file."""

import re

import keras

from keras_switch import convert
from trainers.preflight import ConfigError
from trainers.preflight import check_keras_file


def warm_start(model, path):
    """Copies the weights of the `.keras` model at `path` into `model`,
    layer by layer by name (`keras_switch.convert.copy_weights`); no-op for
    `path=None`.

    A `Dense` or `SwitchedDense` layer gives its kernel and bias (so a plain
    dense network, or a previous run's stripped export/model.keras, warm-starts
    the switched layers of the same name); any other layer with weights
    (Conv2D, BatchNormalization, ...) gives all of them. Switchers are not
    copied. Layers of `model` absent from the file keep their fresh
    initialisation, layers of the file absent from `model` are ignored; both
    are listed on stdout. The file is loaded with `safe_mode=True` (no
    arbitrary code, e.g. no Lambda layers). Call it before restoring a
    checkpoint: the checkpoint takes precedence.

    Raises:
        ConfigError: naming `path`, if it is missing, is not a loadable
            `.keras` file (corrupt, or naming a class that is neither built
            into Keras nor registered), no layer matches by name, or a matching
            layer's weights differ in names or shapes.
    """
    if path is None:
        return
    check_keras_file(path)
    source = load_keras_file(path)
    try:
        copied = convert.copy_weights(source, model)
    except ValueError as error:
        raise ConfigError(f"--init_from={path} does not fit the model: {error}") from error
    fresh, ignored = copied["fresh"], copied["ignored"]
    print(f"Initialised {len(copied['matched'])} layer(s) from {path}: "
          + ", ".join(copied["matched"])
          + (f"; not in the file (fresh): {', '.join(fresh)}" if fresh else "")
          + (f"; not in the model (ignored): {', '.join(ignored)}" if ignored else ""))


def load_keras_file(path, name="--init_from"):
    """The model in the .keras file `path` (safe mode, not compiled).

    Raises:
        ConfigError: naming `name` (the flag or config key) and `path`, if
            Keras cannot load it (corrupt, or naming a class that is neither
            built into Keras nor registered).
    """
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types on a bad file
        reason = " ".join(str(error).split()).rstrip(".")
        unknown = re.search(r"Could not locate (class|function) '([^']+)'", reason)
        if unknown:  # Keras' message buries this under the whole config
            reason = (
                f"unknown {unknown.group(1)} {unknown.group(2)!r}, neither built "
                "into Keras nor registered with keras.saving.register_keras_serializable"
            )
        else:
            reason = f"{type(error).__name__}: " + (
                reason if len(reason) <= 500 else reason[:500] + " ..."
            )
        raise ConfigError(
            f"Cannot load {name}={path}: {reason}. "
            "Expected a .keras file written by keras.Model.save whose layers "
            "are built into Keras or registered by keras_switch (it is loaded "
            "with safe_mode=True: no arbitrary code)."
        ) from error
