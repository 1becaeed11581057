"""The benchmarks' figures: matplotlib (Agg, no display), accuracy against
sparsity, one panel per model, saved as PNG next to the results JSON."""

import contextlib


@contextlib.contextmanager
def panels(path, count=1, size=(6, 4.5)):
    """Yields `count` axes side by side, each `size` inches; then saves the
    figure to `path` (110 dpi) and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, count, figsize=(size[0] * count, size[1]), squeeze=False)
    try:
        yield list(axes[0])
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


# The methods every figure shows, in colours that stay apart; others take
# the next free one of PALETTE.
FIXED_COLOURS = {"ks": "#1f4e9c", "gmp_global": "#e07b00", "tfmot": "#2a9d3a",
                 "dense": "grey"}
PALETTE = ("#c0392b", "#8e44ad", "#7f8c8d", "#b8860b", "#17becf", "#e377c2", "#8c564b",
           "#bcbd22", "#000000", "#9edae5", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94")


def colours(names):
    """{name: colour}: FIXED_COLOURS for the main methods, a different one of
    PALETTE for each other name (sorted), so no two names share one."""
    others = sorted(set(names) - set(FIXED_COLOURS))
    if len(others) > len(PALETTE):
        raise ValueError(f"{len(others)} methods to draw, {len(PALETTE)} colours")
    return {**dict(zip(others, PALETTE)), **FIXED_COLOURS}


def clipped(axis, xs, ys, bottom, colour):
    """Marks the points of (xs, ys) below `bottom` (the axis' lower limit) with
    a down-pointing marker on it and their value, so that a method that
    collapses stays readable without flattening the others."""
    for x, y in zip(xs, ys):
        if y < bottom:
            axis.plot([x], [bottom], "v", color=colour, clip_on=False)
            axis.annotate(f"{y:.1f}", (x, bottom), textcoords="offset points",
                          xytext=(4, 4), fontsize=7, color=colour)


def sparsity_axis(axis, sparsities):
    """The x axis as sparsity in % on a log scale of the density, so that
    90, 95, 98, 99 and 99.5% are spread evenly enough to read."""
    axis.set_xscale("function", functions=(lambda x: -_log10(100 - x),
                                           lambda y: 100 - 10 ** -y))
    ticks = sorted({round(100 * s, 1) for s in sparsities})
    axis.set_xticks(ticks, [f"{t:g}" for t in ticks])


def _log10(x):
    import numpy as np

    return np.log10(np.maximum(x, 1e-3))


def dense_line(axis, accuracy, label="dense"):
    """A dashed grey line at the dense network's `accuracy` (a fraction)."""
    axis.axhline(100 * accuracy, color="grey", linestyle="--", label=label)


def finish(axis, title, xlabel, ylabel, legend_size=8):
    """Title, axis labels, a light grid and the legend."""
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=legend_size)
