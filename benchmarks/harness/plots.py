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
