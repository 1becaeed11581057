"""Statistics over seeds. Every method of a (model, seed) starts from the
same init and sees the same data order, so runs are grouped by their
settings and averaged over seeds, and two methods are compared by their
differences paired by seed, which cancel what the seed decides."""

import math
import statistics


def mean(values):
    """The mean of `values` (NaN for none)."""
    return statistics.fmean(values) if values else float("nan")


def sd(values):
    """The sample standard deviation of `values` (NaN below two)."""
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def standard_error(values):
    """`sd(values) / sqrt(n)`: the standard error of their mean."""
    return sd(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def group(runs, keys):
    """{(run[key] for key in keys): [its runs, by seed]}, the groups in the
    order their first run comes."""
    groups = {}
    for run in runs:
        groups.setdefault(tuple(run[key] for key in keys), []).append(run)
    return {k: sorted(g, key=lambda r: r["seed"]) for k, g in groups.items()}


def over_seeds(runs, fields=()):
    """One row for `runs` (one group, by seed): "seeds", "accuracy" (the test
    accuracy per seed), "mean_accuracy", and the mean of each of `fields`,
    where a field holding a dict ({layer: value}) is averaged per key."""
    accuracy = [r["test_accuracy"] for r in runs]
    row = {"seeds": [r["seed"] for r in runs], "accuracy": accuracy,
           "mean_accuracy": mean(accuracy)}
    for field in fields:
        if isinstance(runs[0][field], dict):
            row[field] = {k: mean([r[field][k] for r in runs]) for k in runs[0][field]}
        else:
            row[field] = mean([r[field] for r in runs])
    return row


def by_seed(runs, value="test_accuracy", **match):
    """{seed: run[value]} of the runs whose fields equal `match`."""
    return {r["seed"]: r[value] for r in runs
            if all(r.get(k) == v for k, v in match.items())}


def paired(mine, theirs, scale=100.0):
    """`mine[s] - theirs[s]` (two `by_seed` dicts; times `scale`: points of
    accuracy) over the seeds both have: (seeds, differences, mean, standard
    error)."""
    seeds = sorted(set(mine) & set(theirs))
    differences = [scale * (mine[s] - theirs[s]) for s in seeds]
    return seeds, differences, mean(differences), standard_error(differences)
