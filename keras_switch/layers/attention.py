"""`SwitchedMultiHeadAttention`: MultiHeadAttention whose projections are
`SwitchedEinsumDense` layers."""

import keras

from keras_switch import _keras_internals
from keras_switch.layers.einsum import SwitchedEinsumDense
from keras_switch.layers.mask import check_switcher
from keras_switch.layers.mask import config_with_switcher
from keras_switch.layers.mask import switcher_from_config

# The projection -> the attribute MultiHeadAttention keeps it in.
PROJECTIONS = {"query": "_query_dense", "key": "_key_dense", "value": "_value_dense",
               "attention_output": "_output_dense", "gate": "_gate_dense"}


@keras.saving.register_keras_serializable(package="keras_switch")
class SwitchedMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` whose projections are switched.

    Same arguments and computation; each projection named in `projections`
    (its EinsumDense sub-layer, named as MultiHeadAttention names it) is a
    `SwitchedEinsumDense` sharing `switcher`, so it is one more switched
    layer of the model (`sparsity_report`, targets and budgets count it; the
    attention layer itself holds no switch). With `switcher=None` it is
    exactly MultiHeadAttention.

    Args:
        *args: `keras.layers.MultiHeadAttention`'s positional arguments
            (`num_heads`, `key_dim`, ...).
        switcher: A `keras_switch.Switcher` or `None`.
        projections: Which projections to switch: a tuple of names among
            ``"query"``, ``"key"``, ``"value"``, ``"attention_output"`` and
            (with `use_gate`) ``"gate"``; default: all of them.
        **kwargs: `keras.layers.MultiHeadAttention`'s keyword arguments and
            the base layer's (`name`, `dtype`).

    Raises:
        ValueError: for an unknown projection name.
        TypeError: if `switcher` is not a `Switcher` or None.
    """

    def __init__(self, *args, switcher=None, projections=None, **kwargs):
        super().__init__(*args, **kwargs)
        check_switcher(switcher)
        known = tuple(name for name in PROJECTIONS
                      if name != "gate" or getattr(self, "_use_gate", False))
        if projections is None:
            projections = known
        projections = tuple(projections)
        unknown = [name for name in projections if name not in known]
        if unknown or not projections:
            raise ValueError(
                f"Received an invalid value for `projections`, expected a non-empty "
                f"tuple of names among {known}. Received: projections={projections!r}"
            )
        self.switcher = switcher
        self.projections = projections

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        if self.switcher is None:
            return
        for name in self.projections:
            attribute = PROJECTIONS[name]
            plain = getattr(self, attribute)
            switched = SwitchedEinsumDense(switcher=self.switcher, **_plain_config(plain))
            switched.build(plain._build_shapes_dict["input_shape"])
            switched.kernel.assign(keras.ops.convert_to_numpy(plain.kernel))
            if plain.bias is not None:
                switched.bias.assign(keras.ops.convert_to_numpy(plain.bias))
            _keras_internals.replace_sublayer(self, attribute, switched)

    def get_config(self):
        config = super().get_config()
        config["projections"] = list(self.projections)
        return config_with_switcher(config, self.switcher)

    @classmethod
    def from_config(cls, config):
        return super().from_config(switcher_from_config(config))


def _plain_config(layer):
    config = layer.get_config()
    config.pop("quantization_config", None)
    return config
