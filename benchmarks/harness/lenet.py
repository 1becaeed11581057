"""LeNet-300-100 and LeNet-5 as plain models of either Keras: Keras 3 for
the benchmarks' own baselines, Keras 2 (`tf_keras`) in the TFMOT process,
which imports this module from its script's directory (it imports
nothing), so that TFMOT prunes the very architecture the others train."""

MODELS = ("lenet300", "lenet5")
FC_LAYERS = ("fc1", "fc2", "fc3")


def lenet(api, model, dense=None, input_name=None):
    """`model` ("lenet300" or "lenet5") built with `api` (`keras` or
    `tf_keras`: its `layers`, `Input` and `Model`), logits out: the FC
    layers `fc1`, `fc2`, `fc3` of class `dense` (default `api.layers.Dense`)
    on a Flatten (LeNet-300-100) or two convolution and pooling stages
    (LeNet-5) of 28x28 images.

    Raises:
        ValueError: for another model.
    """
    layers = api.layers
    dense = dense or layers.Dense
    inputs = api.Input((28, 28), name=input_name)
    if model == "lenet300":
        x = layers.Flatten()(inputs)
        units = (300, 100)
    elif model == "lenet5":
        x = layers.Reshape((28, 28, 1))(inputs)
        x = layers.Conv2D(6, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(16, 5, padding="valid", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        units = (120, 84)
    else:
        raise ValueError(f"model must be one of {MODELS}. Received: {model!r}")
    for name, width in zip(FC_LAYERS, units):
        x = dense(width, activation="relu", name=name)(x)
    return api.Model(inputs, dense(10, name=FC_LAYERS[-1])(x), name=model)
