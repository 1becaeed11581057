"""What one training step needs from the Keras backend, behind one seam.

`SwitchingModel`'s alternation (`keras_switch/model.py`) is written once;
what differs between Keras backends lives in one module per backend here,
the way Keras keeps `backend/tensorflow/trainer.py` beside
`backend/jax/trainer.py`. A backend module provides:

* `gradients(loss_fn, variables)`: runs `loss_fn()`, which returns
  `(loss, aux)`, recording it; returns `(aux, gradients of loss with
  respect to variables)`.
* `apply_gradients(optimizer, grads, variables)`: one optimizer update
  of `variables`, in whatever context the backend needs for it.
* `step_function(model, step)`: a function of fit()'s data iterator that
  runs `step(data)` (which returns the logs) on one batch, compiled and
  distributed the way Keras runs `train_step` on this backend.
* `train_function(model, function)`: that function of the iterator in the
  form the backend's fit() calls its train function.
* `compiled(fn, model)`: `fn`, which reads `model`'s variables, compiled
  for repeated calls on arrays (held-out checks).
* `tracing()`: whether the caller runs inside a function being compiled.
* `scale_for_replicas(value)` / `unscale_for_replicas(value)`: a term each
  replica computes in full, scaled so that summed gradients are right, and
  back for the logs; `logs_for_strategy(logs)`: logs every distribution
  strategy can reduce.

Layers, switcher, sparsity controls and schedule use `keras.ops` only and
need nothing from here. TensorFlow, JAX and PyTorch are implemented.
"""

import keras

#: The Keras backends keras_switch trains on.
SUPPORTED = ("tensorflow", "jax", "torch")

if keras.backend.backend() == "tensorflow":
    from keras_switch.backend import tensorflow as _implementation
elif keras.backend.backend() == "jax":
    from keras_switch.backend import jax as _implementation
elif keras.backend.backend() == "torch":
    from keras_switch.backend import torch as _implementation
else:  # pragma: no cover - Keras has no other backend that trains
    raise ImportError(
        f"keras_switch trains on the Keras backends {list(SUPPORTED)}. "
        f"Received: KERAS_BACKEND={keras.backend.backend()!r}")

apply_gradients = _implementation.apply_gradients
compiled = _implementation.compiled
gradients = _implementation.gradients
logs_for_strategy = _implementation.logs_for_strategy
scale_for_replicas = _implementation.scale_for_replicas
step_function = _implementation.step_function
tracing = _implementation.tracing
train_function = _implementation.train_function
unscale_for_replicas = _implementation.unscale_for_replicas

__all__ = ["SUPPORTED", "apply_gradients", "compiled", "gradients", "logs_for_strategy", "scale_for_replicas",
           "step_function", "tracing", "train_function", "unscale_for_replicas"]
