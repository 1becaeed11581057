"""The replica functions of a backend whose step sees the whole batch (see
`keras_switch.backend`): JAX, whose step receives the global batch sharded
by Keras, and PyTorch, which runs on one device. Nothing is rescaled."""


def logs_for_strategy(logs):
    """Logs as they are."""
    return logs


def scale_for_replicas(value):
    """`value` as it is: the step's loss is already the whole batch's mean."""
    return value


def unscale_for_replicas(value):
    """`value` as it is (see `scale_for_replicas`)."""
    return value
