"""`SwitchSummaries`: TensorBoard views of the switches.

Keras' own `keras.callbacks.TensorBoard` already writes every metric that
`SwitchingModel.train_step` returns (loss, accuracy, `sparsity`,
`switch_loss`, and the `val_` ones). This callback adds what a metric cannot
carry, once per epoch, under `<log_dir>/switches`:

* scalars `sparsity/<layer>`, `sparsity/overall`, `learning_rate/task`,
  `learning_rate/switch`, `phase`: the `SwitchSchedule` stage of the
  epoch's last step (0 dense warm-up, 1 switching, 2 frozen);
* histograms `switch_probability/<layer>` (sigmoid of the switcher's logits)
  and `masked_weights/<layer>` (the kept, non-zero weights);
* images `mask/<layer>` (white = on), one `[in, out]` picture per layer.
"""

import importlib.util
import os

import keras
import numpy as np
import tensorflow as tf

from keras_switch.layers import switched_layers
from keras_switch.report import sparsity_report
from keras_switch.schedule import STAGES


class SwitchSummaries(keras.callbacks.Callback):
    """Writes per-layer switch statistics for TensorBoard every epoch.

    Args:
        log_dir: The TensorBoard log directory (the same one you give
            `keras.callbacks.TensorBoard`); summaries go to
            `<log_dir>/switches`.

    Raises:
        ImportError: when the `tensorboard` package, which writes the
            summaries, is not installed.
    """

    def __init__(self, log_dir):
        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError(
                "SwitchSummaries writes TensorBoard summaries and needs the "
                "tensorboard package: pip install tensorboard")
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(
            os.path.join(self.log_dir, "switches")
        )

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        report = sparsity_report(model)
        with self._writer.as_default(step=step):
            for row in report["layers"]:
                tf.summary.scalar(f"sparsity/{row['name']}", row["sparsity"])
            tf.summary.scalar("sparsity/overall", report["overall"])
            for name in ("task_optimizer", "switch_optimizer"):
                optimizer = getattr(model, name, None)
                if optimizer is not None:
                    tag = "learning_rate/" + name.split("_")[0]
                    rate = keras.ops.convert_to_numpy(optimizer.learning_rate)
                    tf.summary.scalar(tag, float(rate))
            if getattr(model, "schedule", None) is not None:
                # The step just taken, not the next one: the epoch that
                # ended in warm-up logs 0 even if switching starts next.
                last = int(keras.ops.convert_to_numpy(model.switching_step)) - 1
                stage = model.schedule(max(last, 0)).stage
                tf.summary.scalar("phase", float(STAGES.index(stage)))
            for layer in switched_layers(model):
                probabilities = keras.ops.convert_to_numpy(layer.switch_probabilities())
                tf.summary.histogram(
                    f"switch_probability/{layer.name}", probabilities
                )
                kernel = keras.ops.convert_to_numpy(layer.effective_kernel())
                tf.summary.histogram(
                    f"masked_weights/{layer.name}", kernel[kernel != 0]
                )
                # A convolution's mask as the switcher reads it: [kh*kw*c_in, filters].
                mask = keras.ops.convert_to_numpy(layer.switch_matrix(layer.current_mask()))
                tf.summary.image(
                    f"mask/{layer.name}", mask[np.newaxis, :, :, np.newaxis]
                )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
