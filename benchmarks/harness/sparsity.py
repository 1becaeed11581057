"""Sparsity as every benchmark reports it: the exact zeros of the final
kernels ({layer name: array}), never read off a target. It imports
nothing: the TFMOT process imports it from its script's directory."""


def sparsities(kernels):
    """{"sparsity": the exact-zero fraction over all `kernels`,
    "layer_sparsity": {name: that of each}}."""
    zeros = {name: int((k == 0).sum()) for name, k in kernels.items()}
    sizes = {name: int(k.size) for name, k in kernels.items()}
    return {"sparsity": sum(zeros.values()) / sum(sizes.values()),
            "layer_sparsity": {n: zeros[n] / sizes[n] for n in kernels}}


def fc_sparsities(kernels, output="fc3"):
    """{"fc_sparsity": over the FC `kernels`, "hidden_sparsity": over all
    but the `output` layer's, "layer_sparsity"}."""
    every = sparsities(kernels)
    hidden = sparsities({n: k for n, k in kernels.items() if n != output})
    return {"fc_sparsity": every["sparsity"], "hidden_sparsity": hidden["sparsity"],
            "layer_sparsity": every["layer_sparsity"]}
