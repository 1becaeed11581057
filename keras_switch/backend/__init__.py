"""What one training step needs from the Keras backend, behind one seam.

`SwitchingModel`'s alternation (`keras_switch/model.py`) is written once;
what differs between Keras backends lives in one module per backend here,
the way Keras keeps `backend/tensorflow/trainer.py` beside
`backend/jax/trainer.py`. A backend module provides:

* `gradients(loss_fn, variables)`: runs `loss_fn()`, which returns
  `(loss, aux)`, recording it; returns `(aux, gradients of loss with
  respect to variables)`.
* `step_function(model, step)`: a function of fit()'s data iterator that
  runs `step(data)` (which returns the logs) on one batch, compiled and
  distributed the way Keras runs `train_step` on this backend.
* `compiled(fn)`: `fn` compiled for repeated calls on arrays (held-out
  checks).
* `tracing()`: whether the caller runs inside a function being compiled.
* `scale_for_replicas(value)` / `unscale_for_replicas(value)`: a term each
  replica computes in full, scaled so that summed gradients are right, and
  back for the logs; `logs_for_strategy(logs)`: logs every distribution
  strategy can reduce.

Layers, switcher, sparsity controls and schedule use `keras.ops` only and
need nothing from here. Only TensorFlow is implemented; `keras_switch`'s
import names the backend it needs.
"""

import keras

if keras.backend.backend() == "tensorflow":
    from keras_switch.backend.tensorflow import compiled
    from keras_switch.backend.tensorflow import gradients
    from keras_switch.backend.tensorflow import logs_for_strategy
    from keras_switch.backend.tensorflow import scale_for_replicas
    from keras_switch.backend.tensorflow import step_function
    from keras_switch.backend.tensorflow import tracing
    from keras_switch.backend.tensorflow import unscale_for_replicas
else:  # pragma: no cover - keras_switch/__init__.py refuses other backends first
    raise ImportError(
        "keras_switch's training step is implemented for the TensorFlow "
        f"backend only. Received: KERAS_BACKEND={keras.backend.backend()!r}")

__all__ = ["compiled", "gradients", "logs_for_strategy", "scale_for_replicas",
           "step_function", "tracing", "unscale_for_replicas"]
