"""The run cache: one file per training run under `<output_dir>/runs/`, so that
a benchmark can be stopped and resumed. `runs/NAME.json` holds {"key",
"result"}; the key is {"code": digest of `CODE` and the protocol's sources,
"config", "data": `data.identity`}, and a file whose key differs is trained
again."""

import ast
import functools
import glob
import hashlib
import json
import os

import numpy as np

from benchmarks.harness import report

# What every run's result depends on, relative to the repository: the
# library, the trainer and the recipe's configs, the harness's data, models,
# baselines, runs and measurements, and the TFMOT baseline.
CODE = ("keras_switch", "trainers", "configs", "benchmarks/harness/data.py",
        "benchmarks/harness/lenet.py", "benchmarks/harness/baselines.py",
        "benchmarks/harness/runs.py", "benchmarks/harness/measure.py",
        "benchmarks/harness/sparsity.py",
        "benchmarks/tfmot_env.py", "benchmarks/tfmot_baseline.py")


def _code(text):
    """The code of Python source `text`: its syntax tree without docstrings,
    so that comments, docstrings and layout, which cannot change a result, do
    not retrain a run. Source that does not parse is returned as it is."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


@functools.lru_cache(maxsize=None)
def code_digest(sources=CODE):
    """SHA-256 over the relative path and code (`_code`: docstrings, comments
    and layout left out) of every .py file of `sources` (files, or
    directories searched recursively), sorted."""
    paths = set()
    for source in (os.path.join(report.ROOT, s) for s in sources):
        paths.update(glob.glob(os.path.join(source, "**", "*.py"), recursive=True)
                     if os.path.isdir(source) else [source])
    digest = hashlib.sha256()
    for path in sorted(os.path.relpath(p, report.ROOT) for p in paths):
        with open(os.path.join(report.ROOT, path), "rb") as f:
            digest.update(path.encode() + b"\0" + _code(f.read()) + b"\0")
    return digest.hexdigest()


def _canonical(value):
    """`value` as sorted-key JSON (tuples as lists, other types as `str`)."""
    return json.dumps(value, sort_keys=True, default=str)


class RunCache:
    """The runs of one benchmark invocation.

    Args:
        output_dir: The benchmark's `--output_dir`; runs go to its `runs/`.
        label: How progress lines name the benchmark ("[pareto] ...").
        data: `data.identity` of the arrays every run here trains on.
        rerun: Train every run again, whatever its file holds.
        sources: More files (relative to the repository) whose code decides
            these runs' results: the protocol's own training code.
    """

    def __init__(self, output_dir, label, data, rerun=False, sources=()):
        self.directory = os.path.join(output_dir, "runs")
        self.label, self.data, self.rerun = label, data, rerun
        self.code = code_digest(CODE + tuple(sources))

    def key(self, config):
        """The key of a run with `config` here, as JSON gives it back."""
        return json.loads(_canonical({"code": self.code, "config": config, "data": self.data}))

    def _stale(self, path, key, arrays):
        """Why the run file `path` is not reused for `key` (None: it is)."""
        if self.rerun or not os.path.exists(path):
            return "--rerun" if self.rerun else "not run yet"
        with open(path) as f:
            stored = json.load(f).get("key") or {}
        changed = [k for k in key if _canonical(stored.get(k)) != _canonical(key[k])]
        if changed:
            return f"its {'/'.join(changed)} changed" if stored else "its file holds no key"
        return "its arrays are missing" if arrays and not os.path.exists(arrays) else None

    def run(self, name, config, train, fields=None, arrays=False):
        """The result of run `name` with `config`: the one in `runs/NAME.json`
        while its key holds, else `train()`'s (a result dict) with `fields`
        added, written there with its key. With `arrays`, `train()` returns
        (result, list of arrays), kept in `runs/NAME.npz`, and so does this."""
        key = self.key(config)
        path = os.path.join(self.directory, f"{name}.json")
        npz = path[:-len(".json")] + ".npz" if arrays else None
        stale = self._stale(path, key, npz)
        if stale is None:
            with open(path) as f:
                result = json.load(f)["result"]
            if not arrays:
                return result
            with np.load(npz) as stored:
                return result, [stored[f"w_{i}"] for i in range(len(stored.files))]
        print(f"[{self.label}] {name} ({stale}) ...", flush=True)
        trained = train()
        result = trained[0] if arrays else trained
        result.update(fields or {})
        if arrays:
            os.makedirs(self.directory, exist_ok=True)
            np.savez(npz, **{f"w_{i}": w for i, w in enumerate(trained[1])})
        report.write_json(path, {"key": key, "result": result})
        shown = [f"{k} {result[k]:.4g}" for k in ("test_accuracy", "fc_sparsity", "sparsity",
                                                  "train_seconds") if k in result]
        print(f"[{self.label}]   {', '.join(shown) or 'done'}", flush=True)
        return (result, trained[1]) if arrays else result
