"""Markdown tables as BENCHMARKS.md prints them, and the cells the
benchmarks format alike: model names, targets, values per seed, per-layer
percentages, signed differences and verdicts."""

import math

# How the tables name the models, in the order they list them.
MODEL_NAMES = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5"}
DASH = "–"


def table(header, rows):
    """A markdown table: the `header` cells, a `|---|` rule, then a line per
    row of `rows` (each a sequence of cells, written with `str`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def model_name(model):
    """"LeNet-300-100" for "lenet300"; an unknown model as it is."""
    return MODEL_NAMES.get(model, model)


def model_order(model):
    """A sort key listing the models in `MODEL_NAMES` order, others last."""
    return list(MODEL_NAMES).index(model) if model in MODEL_NAMES else len(MODEL_NAMES)


def target(value):
    """A target sparsity with two decimals (0.95), three where it needs them
    (0.995); a dash for none (dense, or the pure task objective)."""
    if value is None:
        return DASH
    return f"{value:.2f}" if round(value, 2) == value else f"{value:.3f}"


def per_seed(values, spec=".4f"):
    """Values one per seed, "0.8891 / 0.8863 / 0.8891"."""
    return " / ".join(format(value, spec) for value in values)


def percents(values, names=None, spec=".1f", unit=""):
    """Fractions as percentages joined by "/" ("92.0/77.0/0.0"): `values` a
    sequence, or a dict read in `names` order (a dash for a name it lacks)
    or its own."""
    if isinstance(values, dict):
        names = list(values) if names is None else names
        values = [values.get(name) for name in names]
    return "/".join(DASH if v is None else f"{100 * v:{spec}}{unit}" for v in values)


def number(value, spec=".4f"):
    """`value` formatted, or a dash for None."""
    return DASH if value is None else format(value, spec)


def signed(mean, error=None):
    """A difference in points, "+1.37 ± 0.47": without the error where there
    is none (one seed), a dash where there is no mean."""
    if mean is None or math.isnan(mean):
        return DASH
    if error is None or math.isnan(error):
        return f"{mean:+.2f}"
    return f"{mean:+.2f} ± {error:.2f}"


def verdict(met, yes="met", no="**missed**", unknown=DASH):
    """`yes` if `met`, `no` if not, `unknown` for None (not measured)."""
    return unknown if met is None else (yes if met else no)
