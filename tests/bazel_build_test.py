"""The Bazel BUILD file covers the checkout: every test file, binary and module
has a target, and every target has the modules it imports in its runfiles.

Runs without Bazel (it reads BUILD as Python syntax, which Starlark BUILD files
are) in well under a second, so the default pytest tier catches a BUILD that
has drifted from the files before `bazel test` does.
"""

import ast
import fnmatch
import glob
import os
import re

from absl.testing import absltest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Directories whose Python files must all belong to a target.
SOURCE_DIRS = ("keras_switch", "configs", "trainers", "benchmarks", "tests", "_keras_switch_train")
# Where the binaries live: files with a module-level `if __name__ == "__main__"`.
BINARY_DIRS = ("trainers", "benchmarks")
RULES = ("py_library", "py_binary", "py_test", "pytest_test")
# What tools/pytest.bzl's pytest_test adds to the py_test it declares.
PYTEST_MAIN = "tools/pytest_main.py"
PYTEST_SUPPORT = "test_support"


class Target:
    def __init__(self, kind, name, srcs=(), deps=(), data=(), main=None, size=None):
        self.kind, self.name = kind, name
        self.srcs, self.deps, self.data = list(srcs), list(deps), list(data)
        self.main, self.size = main, size

    @property
    def is_test(self):
        return self.kind in ("py_test", "pytest_test")


def _glob(root, include, exclude=()):
    """Bazel's glob() for the root package: files only, `**` spans directories."""
    found = set()
    for pattern in include:
        for path in glob.glob(os.path.join(root, pattern), recursive=True):
            if os.path.isfile(path):
                found.add(os.path.relpath(path, root))
    return sorted(p for p in found if not any(fnmatch.fnmatch(p, e) for e in exclude))


def _value(node, root):
    """Evaluates the few Starlark expressions BUILD uses: literals, lists, +
    and glob()."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_value(item, root) for item in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, root) + _value(node.right, root)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob":
        args = [_value(a, root) for a in node.args]
        kwargs = {k.arg: _value(k.value, root) for k in node.keywords}
        return _glob(root, *args, **kwargs)
    raise ValueError(
        f"BUILD line {node.lineno}: bazel_build_test cannot evaluate "
        f"{ast.dump(node)[:80]}; keep BUILD to literals, lists, + and glob() "
        "or teach _value() the new form"
    )


def _target_name(label):
    """':x' or '//:x' -> 'x'; None for a file or a label in another package."""
    if label.startswith("//:"):
        return label[3:]
    if label.startswith(":"):
        return label[1:]
    return None


def _file_path(label):
    """A file label -> its path from the workspace root ('//tools:a.py' ->
    'tools/a.py')."""
    if label.startswith("//"):
        package, _, name = label[2:].partition(":")
        return os.path.join(package, name) if package else name
    return label


def parse_build(text, root=ROOT):
    """{name: Target} for the Python rules of a BUILD file's text."""
    targets = {}
    for statement in ast.parse(text).body:
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
            raise ValueError(f"BUILD line {statement.lineno}: expected a rule call")
        call = statement.value
        kind = call.func.id
        if kind not in RULES:
            continue  # load(), package(), exports_files(), ...
        attrs = {k.arg: _value(k.value, root) for k in call.keywords}
        name = attrs["name"]
        if name in targets:
            raise ValueError(f"BUILD: two targets named {name!r}")
        target = Target(kind, name, attrs.get("srcs", ()), attrs.get("deps", ()),
                        attrs.get("data", ()), attrs.get("main"), attrs.get("size"))
        if kind == "pytest_test":
            # tools/pytest.bzl: `src` (default tests/<name>.py) run by
            # tools/pytest_main.py.
            target.main = attrs.get("src") or f"tests/{name}.py"
            target.srcs = [target.main, PYTEST_MAIN]
            target.deps = target.deps + [":" + PYTEST_SUPPORT]
        elif target.main is None and len(target.srcs) == 1 and kind != "py_library":
            target.main = target.srcs[0]  # Bazel's default: the only source
        targets[name] = target
    return targets


def runfiles(targets, name, _seen=None):
    """(files, target names) in the runfiles of target `name`: its srcs and
    data, and those of its deps and data targets, transitively."""
    seen = set() if _seen is None else _seen
    files = set()
    if name in seen:
        return files, seen
    seen.add(name)
    target = targets[name]
    for label in target.srcs + target.data + target.deps:
        dep = _target_name(label)
        if dep is None and label in targets:
            dep = label  # a bare name in data/srcs that names a rule
        if dep is not None:
            files |= runfiles(targets, dep, seen)[0]
        else:
            files.add(_file_path(label))
    return files, seen


def first_party_packages(root=ROOT):
    return {
        name for name in os.listdir(root)
        if os.path.isfile(os.path.join(root, name, "__init__.py"))
    }


def _module_files(module, root):
    """Files that `import module` loads: the module and its packages'
    __init__.py files. The last file is None if the module does not exist."""
    parts = module.split(".")
    files = [os.path.join(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    as_file = os.path.join(*parts) + ".py"
    as_package = os.path.join(*parts, "__init__.py")
    for candidate in (as_file, as_package):
        if os.path.isfile(os.path.join(root, candidate)):
            return files + [candidate]
    return files + [None]


def imported_files(path, root=ROOT):
    """{file that `path` imports, or None when a module is missing: the
    import}, for the first-party modules it imports (anywhere in the file)."""
    packages = first_party_packages(root)
    with open(os.path.join(root, path)) as f:
        tree = ast.parse(f.read(), path)
    package = os.path.dirname(path).replace(os.sep, ".")
    needed = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b`: b is a module if a/b.py or a/b/ exists,
            # else a name in a.
            modules = [base]
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if _module_files(candidate, root)[-1] is not None:
                    modules.append(candidate)
        else:
            continue
        for module in modules:
            if module.split(".")[0] in packages:
                for file in _module_files(module, root):
                    needed.setdefault(file, module)
    return needed


def binary_files(root=ROOT):
    """The trainers/ and benchmarks/ files that run as programs."""
    binaries = []
    for directory in BINARY_DIRS:
        for path in sorted(glob.glob(os.path.join(root, directory, "*.py"))):
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in tree.body:
                if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                    binaries.append(os.path.relpath(path, root))
                    break
    return binaries


def all_test_files(root=ROOT):
    """tests/**/*_test.py: the library's tests and, in subdirectories, the
    others (tests/benchmarks/)."""
    return sorted(os.path.relpath(p, root) for p in glob.glob(
        os.path.join(root, "tests", "**", "*_test.py"), recursive=True))


def package_inits(path, root=ROOT):
    """The __init__.py files of the packages holding `path` (pytest imports
    tests/benchmarks/x_test.py as `tests.benchmarks.x_test`: it needs
    both tests/__init__.py and tests/benchmarks/__init__.py)."""
    inits = []
    directory = os.path.dirname(path)
    while directory:
        init = os.path.join(directory, "__init__.py")
        if not os.path.isfile(os.path.join(root, init)):
            break
        inits.append(init)
        directory = os.path.dirname(directory)
    return inits


def pytest_test_rule(path):
    """The BUILD rule to add for test file `path`."""
    name = os.path.basename(path)[:-3]
    src = "" if path == f"tests/{name}.py" else f', src = "{path}"'
    return f'pytest_test(name = "{name}"{src}, size = ..., deps = [...])'


def missing_test_targets(targets, root=ROOT):
    mains = {t.main for t in targets.values() if t.is_test}
    return [path for path in all_test_files(root) if path not in mains]


def missing_binary_targets(targets, root=ROOT):
    mains = {t.main for t in targets.values() if t.kind == "py_binary"}
    return [path for path in binary_files(root) if path not in mains]


def _read_build(root=ROOT):
    with open(os.path.join(root, "BUILD")) as f:
        return f.read()


class BazelBuildTest(absltest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.targets = parse_build(_read_build())

    def test_every_test_file_has_a_test_target(self):
        missing = missing_test_targets(self.targets)
        self.assertEmpty(missing, "add to BUILD: " + "; ".join(
            pytest_test_rule(p) for p in missing))

    def test_a_test_target_is_named_after_its_file(self):
        # `bazel test //:<file's base name>` runs any test file, wherever it is.
        for target in self.targets.values():
            if target.is_test:
                self.assertEqual(target.name, os.path.basename(target.main)[:-3],
                                 f"{target.name}: runs {target.main}")

    def test_test_packages_are_in_the_runfiles(self):
        for target in self.targets.values():
            if target.is_test:
                files = runfiles(self.targets, target.name)[0]
                for init in package_inits(target.main):
                    self.assertTrue(init in files,
                                    f"{target.name}: pytest imports {target.main} from its "
                                    f"package: add {init} to //:test_support")

    def test_every_binary_has_a_py_binary(self):
        missing = missing_binary_targets(self.targets)
        self.assertEmpty(missing, "add a py_binary (main = the file) to BUILD for these")
        stale = [t.name for t in self.targets.values()
                 if t.kind == "py_binary" and t.main not in binary_files()]
        self.assertEmpty(stale, "py_binary targets whose main is not a binary file")

    def test_every_module_belongs_to_a_target(self):
        owned = {src for t in self.targets.values() for src in t.srcs}
        orphans = [
            os.path.relpath(path, ROOT)
            for directory in SOURCE_DIRS
            for path in sorted(glob.glob(os.path.join(ROOT, directory, "**", "*.py"),
                                         recursive=True))
            if os.path.relpath(path, ROOT) not in owned
        ]
        self.assertEmpty(orphans, "put these in the srcs of a BUILD target")

    def test_every_label_resolves(self):
        for target in self.targets.values():
            for label in target.srcs + target.data + target.deps:
                name = _target_name(label)
                if name is not None:
                    self.assertIn(name, self.targets, f"{target.name}: no target {label}")
                elif label not in self.targets:
                    path = _file_path(label)
                    self.assertTrue(os.path.exists(os.path.join(ROOT, path)),
                                    f"{target.name}: no file {path}")
            if target.main is not None:
                self.assertIn(target.main, target.srcs, f"{target.name}: main not in srcs")

    def test_this_test_sees_every_file_it_checks(self):
        # Under Bazel this file runs in its own runfiles tree, where
        # test_every_label_resolves finds only the files of its data: a
        # file named in BUILD but missing there fails under Bazel alone.
        own = runfiles(self.targets, "bazel_build_test")[0]
        named = {
            _file_path(label)
            for target in self.targets.values()
            for label in target.srcs + target.data + target.deps
            if _target_name(label) is None and label not in self.targets
        }
        self.assertEmpty(sorted(named - own), "add these to bazel_build_test's data")

    def test_every_test_has_a_size(self):
        for target in self.targets.values():
            if target.is_test:
                self.assertIn(target.size, ("small", "medium", "large", "enormous"),
                              f"{target.name}: set size")

    def test_imported_modules_are_in_the_runfiles(self):
        for target in self.targets.values():
            files = runfiles(self.targets, target.name)[0]
            for src in target.srcs:
                if not src.endswith(".py"):
                    continue
                for needed, module in imported_files(src).items():
                    self.assertIsNotNone(needed, f"{src}: no module {module}")
                    self.assertTrue(needed in files,
                                    f"{target.name}: {src} imports {module}, which is not in "
                                    "its srcs, deps or data: add the library to deps")

    def test_binaries_run_by_tests_are_in_their_data(self):
        binaries = {t.main: t.name for t in self.targets.values() if t.kind == "py_binary"}
        for target in self.targets.values():
            if not target.is_test:
                continue
            reached = runfiles(self.targets, target.name)[1]
            with open(os.path.join(ROOT, target.main)) as f:
                source = f.read()
            for module in re.findall(r'"-m",\s*"([\w.]+)"', source):
                path = module.replace(".", "/") + ".py"
                if path in binaries:
                    self.assertTrue(binaries[path] in reached,
                                    f"{target.name} runs {module}: add "
                                    f'":{binaries[path]}" to its data')

    def test_a_missing_target_is_noticed(self):
        # The checks above on a BUILD with trainer_test, pareto_test (in
        # tests/benchmarks/) and //:train removed.
        text = _read_build()
        for name in ("trainer_test", "pareto_test", "train"):
            start = text.index(f'    name = "{name}",')
            start = text.rindex("\n", 0, start - 1) + 1
            text = text[:start] + text[text.index("\n)\n", start) + 3:]
        targets = parse_build(text)
        self.assertIn("tests/trainer_test.py", missing_test_targets(targets))
        self.assertIn("tests/benchmarks/pareto_test.py", missing_test_targets(targets))
        self.assertEqual(pytest_test_rule("tests/benchmarks/pareto_test.py"),
                         'pytest_test(name = "pareto_test", src = "tests/benchmarks/'
                         'pareto_test.py", size = ..., deps = [...])')
        self.assertIn("trainers/train.py", missing_binary_targets(targets))


if __name__ == "__main__":
    absltest.main()
