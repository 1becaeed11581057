"""The directions of dependency that ../shared/DESIGN.md asks for, read from
the source's imports (no module is imported here):

* nothing in keras_switch/ imports trainers/, configs/ or benchmarks/;
* only benchmarks (and their tests) import benchmarks/;
* Keras' private `keras.src` is reached only by keras_switch/_keras_internals.py,
  and `_keras_internals` is used only inside keras_switch/;
* the trainer modules that trainers/train.py runs before TensorFlow starts
  (preflight.py, flag_parsing.py, and atomic_json.py, which preflight.py
  writes config.json with), and the `keras-switch-train` entry point that
  runs it (_keras_switch_train), import no TensorFlow, Keras or keras_switch;
* training never imports export: in keras_switch/, only the package's
  __init__.py and keras_switch/export/ itself import keras_switch.export;
* JAX is imported only by keras_switch/backend/jax.py, and TensorFlow only
  by the library modules listed in
  TENSORFLOW_MODULES / TENSORFLOW_PACKAGES (the training step's TensorFlow
  code lives in keras_switch/backend/);
* one concern per module: no library module over MAX_MODULE_LINES lines;
  model.py (the alternation) under MAX_MODEL_LINES, the default training
  step's functions under MAX_STEP_LINES together, the phase an argument;
* the first-party modules import each other without a cycle;
* the library's docstrings and comments state contracts: no issue numbers,
  commit hashes or measured differences and ratios (those live in
  BENCHMARKS.md and CHANGELOG.md).
"""

import ast
import glob
import os
import re

from absl.testing import absltest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_switch", "trainers", "configs", "benchmarks", "tests", "_keras_switch_train")
# What trainers/train.py imports before TensorFlow, and the console script
# that runs it.
TENSORFLOW_FREE = ("trainers.preflight", "trainers.flag_parsing", "trainers.atomic_json",
                   "_keras_switch_train")


def _module_name(path):
    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _sources():
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in glob.glob(os.path.join(ROOT, package, "**", "*.py"), recursive=True)
    }


def imports(path, modules, module_level_only=False):
    """The modules `path` imports (absolute names; for `from a import b`, a.b
    if that is a module, else a), at module level only if asked."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    nodes = tree.body if module_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found


# The library modules that may import TensorFlow: the TensorFlow backend of
# the training step, the export and the sparse products (TensorFlow by
# design), the tf.data loaders, TensorBoard summaries, and the package's
# install check. Everything else computes with keras.ops.
TENSORFLOW_MODULES = {"keras_switch", "keras_switch.backend.tensorflow", "keras_switch.callbacks",
                      "keras_switch.data.datasets"}
TENSORFLOW_PACKAGES = ("keras_switch.export.", "keras_switch.sparse.")
# One concern per module (../shared/DESIGN.md: none much over ~450 lines).
MAX_MODULE_LINES = 460
# History in the library's prose: "issue 17", "#23", "historical (`0aa2909`)",
# a measured difference ("+0.3 pt", "-0.2 pt") or ratio ("1.13x").
HISTORY = re.compile(r"\bissues? #?\d+|(?<![\w&])#\d+\b|historical \(|[+±−-]\d+(\.\d+)? ?pt\b"
                     r"|\b\d+\.\d+x\b")
# SwitchingModel is the alternation: model.py, and the default step's code
# in it (the functions one training step runs through).
MAX_MODEL_LINES = 400
MAX_STEP_LINES = 150
STEP_FUNCTIONS = ("make_train_function", "train_step", "_phase_step", "_task_phase_masks",
                  "_task_phase", "_switch_phase", "_refresh_masks", "_density", "_phase_masks")


class LayoutTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sources = _sources()
        cls.imports = {name: imports(path, cls.sources) for name, path in cls.sources.items()}

    def _importers(self, prefix):
        return {
            name for name, found in self.imports.items()
            if any(m == prefix or m.startswith(prefix + ".") for m in found)
        }

    def test_the_library_knows_no_binary(self):
        for package in ("trainers", "configs", "benchmarks"):
            offenders = {n for n in self._importers(package) if n.startswith("keras_switch")}
            self.assertEmpty(offenders, f"keras_switch imports {package}")

    def test_nothing_depends_on_benchmarks(self):
        offenders = {n for n in self._importers("benchmarks")
                     if not n.startswith(("benchmarks", "tests.benchmarks"))}
        self.assertEmpty(offenders)

    def test_keras_internals_are_fenced_in_the_library(self):
        self.assertEqual(self._importers("keras.src"), {"keras_switch._keras_internals"})
        offenders = {n for n in self._importers("keras_switch._keras_internals")
                     if not n.startswith("keras_switch")
                     and n != "tests.keras_internals_test"}
        self.assertEmpty(offenders)

    def test_preflight_needs_no_tensorflow(self):
        for module in TENSORFLOW_FREE:
            heavy = {m for m in self.imports[module]
                     if m.split(".")[0] in ("tensorflow", "keras", "keras_switch")}
            self.assertEmpty(heavy, module)

    def test_training_never_imports_export(self):
        library = {n for n in self._importers("keras_switch.export")
                   if n.startswith("keras_switch")}
        # The public API re-exports it, imported on first use (it needs TensorFlow).
        with open(self.sources["keras_switch"]) as f:
            self.assertIn('"keras_switch.export"', f.read())
        offenders = {n for n in library
                     if n != "keras_switch" and not n.startswith("keras_switch.export")}
        self.assertEmpty(offenders, "keras_switch.export imported outside the export")
        # The sparsity report, which training reads, needs no TensorFlow.
        heavy = {m for m in self.imports["keras_switch.report"]
                 if m.split(".")[0] == "tensorflow"}
        self.assertEmpty(heavy)

    def test_tensorflow_only_where_listed(self):
        tf_users = {n for n in self._importers("tensorflow") if n.startswith("keras_switch")}
        offenders = {n for n in tf_users
                     if n not in TENSORFLOW_MODULES and not n.startswith(TENSORFLOW_PACKAGES)}
        self.assertEmpty(offenders, "TensorFlow imported outside the listed modules")
        self.assertIn("keras_switch.backend.tensorflow", tf_users)
        self.assertNotIn("keras_switch", tf_users)  # importable where TensorFlow is not

    def test_jax_and_torch_only_in_their_backends(self):
        for package in ("jax", "torch"):
            users = {n for n in self._importers(package) if n.startswith("keras_switch")}
            self.assertEqual(users, {f"keras_switch.backend.{package}"})

    def test_library_modules_hold_one_concern(self):
        for name, path in self.sources.items():
            if name.startswith("keras_switch"):
                with open(path) as f:
                    lines = len(f.readlines())
                self.assertLessEqual(lines, MAX_MODULE_LINES, f"{path}: {lines} lines")

    def test_library_prose_states_contracts(self):
        for name, path in self.sources.items():
            if name.startswith("keras_switch"):
                with open(path) as f:
                    found = [f"{path}:{n}: {line.strip()}" for n, line in enumerate(f, 1)
                             if HISTORY.search(line)]
                self.assertEmpty(found, "history in the library's prose")

    def test_history_pattern(self):
        for line in ("the default before issue 17", "see #23", "+0.3 pt over it",
                     "costs 1.13x Dense", "historical (`0aa2909`)"):
            self.assertRegex(line, HISTORY)
        for line in ("more than 0.5 pt below", "x = y + 1", "0.005 = 0.5 pt", "a 3x3 kernel"):
            self.assertNotRegex(line, HISTORY)

    def test_switching_model_is_the_alternation(self):
        path = self.sources["keras_switch.model"]
        with open(path) as f:
            source = f.read()
        self.assertLessEqual(len(source.splitlines()), MAX_MODEL_LINES)
        step = {node.name: node.end_lineno - node.lineno + 1
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.FunctionDef) and node.name in STEP_FUNCTIONS}
        self.assertEqual(set(step), set(STEP_FUNCTIONS), "a step function moved")
        self.assertLessEqual(sum(step.values()), MAX_STEP_LINES, step)
        # The phase travels as an argument: nothing stores it on the model.
        self.assertNotIn("self._phase =", source)

    def test_no_import_cycle(self):
        graph = {
            name: {m for m in imports(path, self.sources, module_level_only=True)
                   if m in self.sources and m != name}
            for name, path in self.sources.items()
        }
        state = {}

        def visit(name, path):
            state[name] = "open"
            for dep in sorted(graph[name]):
                if state.get(dep) == "open":
                    self.fail("import cycle: " + " -> ".join(path + [dep]))
                if dep not in state:
                    visit(dep, path + [dep])
            state[name] = "done"

        for name in sorted(graph):
            if name not in state:
                visit(name, [name])

    def test_a_cycle_would_be_noticed(self):
        with self.assertRaises(AssertionError):
            graph_test = LayoutTest("test_no_import_cycle")
            graph_test.sources = {"a": "a.py", "b": "b.py"}
            original = globals()["imports"]
            try:
                globals()["imports"] = lambda path, modules, module_level_only=False: (
                    {"b"} if path == "a.py" else {"a"})
                graph_test.test_no_import_cycle()
            finally:
                globals()["imports"] = original


if __name__ == "__main__":
    absltest.main()
