"""Switched layers: Keras' Dense, Conv1D, Conv2D, DepthwiseConv2D and
EinsumDense layers whose connections a switcher turns on or off, and
MultiHeadAttention with switched projections.

One module per layer family (`dense`, `conv`, `einsum`, `attention`)
beside `mask`, the switches every family shares (`SwitchedKernel`,
`straight_through`); here, what reads a model's switched layers as a whole.
"""

from keras_switch import _keras_internals
from keras_switch.layers.attention import SwitchedMultiHeadAttention
from keras_switch.layers.conv import SwitchedConv1D
from keras_switch.layers.conv import SwitchedConv2D
from keras_switch.layers.conv import SwitchedDepthwiseConv2D
from keras_switch.layers.dense import SwitchedDense
from keras_switch.layers.einsum import SwitchedEinsumDense
from keras_switch.layers.mask import ESTIMATORS
from keras_switch.layers.mask import SwitchedKernel
from keras_switch.layers.mask import straight_through

__all__ = ["ESTIMATORS", "SWITCHED_CLASSES", "SwitchedConv1D", "SwitchedConv2D",
           "SwitchedDense", "SwitchedDepthwiseConv2D", "SwitchedEinsumDense",
           "SwitchedKernel", "SwitchedMultiHeadAttention", "link_neighbours",
           "straight_through", "switched_layers"]

# The layers that hold a switched kernel (SwitchedMultiHeadAttention holds
# SwitchedEinsumDense layers).
SWITCHED_CLASSES = (SwitchedDense, SwitchedConv1D, SwitchedConv2D, SwitchedDepthwiseConv2D,
                    SwitchedEinsumDense)


def link_neighbours(layers):
    """Sets each layer's `neighbours`: consecutive switched Dense layers (in
    `layers`' order) where one's units are the next one's inputs form a
    chain; every other side is None. What the ``unit_in`` / ``unit_out``
    switcher features read."""
    pairs = {id(layer): [None, None] for layer in layers}
    for a, b in zip(layers, layers[1:]):
        if (isinstance(a, SwitchedDense) and isinstance(b, SwitchedDense) and a.built
                and b.built and a.kernel.shape[1] == b.kernel.shape[0]):
            pairs[id(a)][1], pairs[id(b)][0] = b, a
    for layer in layers:
        # Mutated in place: setting a layer attribute to layers would make
        # Keras track them as its sub-layers.
        layer._neighbours.value = tuple(pairs[id(layer)])


def switched_layers(model):
    """Every switched layer (`SWITCHED_CLASSES`) of `model` that has a switcher, in model order (nested models included)."""
    return [
        layer
        for layer in _keras_internals.flatten_layers(model)
        if isinstance(layer, SwitchedKernel) and layer.switched
    ]
