"""pytest_test: the Bazel py_test for one tests/**/*_test.py file.

`make test` runs the suite with pytest, which reads pytest.ini (tests marked
`slow` are skipped, warnings are errors) and tests/conftest.py (the CPU split
into two logical devices). A py_test whose main is the test file itself would
run `tf.test.main()` and get neither, so every test file instead runs through
tools/pytest_main.py, which hands it to pytest with the same pytest.ini.
"""

def pytest_test(name, src = None, deps = [], data = [], **kwargs):
    """Declares py_test `name` running test file `src` under pytest.

    Args:
      name: the target's name; also the test file's base name without ".py"
        when `src` is not given (tests/<name>.py).
      src: the test file, from the workspace root, for a test file in a
        subdirectory of tests/ (e.g. "tests/benchmarks/<name>.py"). Its
        packages' __init__.py files must be in deps (//:test_support has
        tests/__init__.py and tests/benchmarks/__init__.py).
      deps: py_library targets that the test file imports. //:test_support
        (tests/conftest.py, tests/test_case.py, pytest.ini) is always added.
      data: files the test reads, and binaries it runs in a subprocess.
      **kwargs: further py_test attributes: size, timeout, tags, ...
    """
    if src == None:
        src = "tests/%s.py" % name
    elif not (src.startswith("tests/") and src.endswith("_test.py")):
        fail("pytest_test %s: src must be a tests/**/*_test.py file. Received: %s" % (name, src))
    native.py_test(
        name = name,
        srcs = [src, "//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = [src],
        deps = deps + ["//:test_support"],
        data = data,
        python_version = "PY3",
        srcs_version = "PY3",
        # The test files import each other as `tests.<name>` from the
        # workspace root; an __init__.py that Bazel made up in the runfiles
        # root would turn that root into a package of its own.
        legacy_create_init = False,
        **kwargs
    )
