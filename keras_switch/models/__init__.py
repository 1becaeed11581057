"""Task networks with switched fully connected layers."""

from keras_switch.models.lenet import lenet_300_100

__all__ = ["lenet_300_100"]
