"""pytest_test: the Bazel py_test for one tests/*_test.py file.

`make test` runs the suite with pytest, which reads pytest.ini (tests marked
`slow` are skipped, warnings are errors) and tests/conftest.py (the CPU split
into two logical devices). A py_test whose main is the test file itself would
run `tf.test.main()` and get neither, so every test file instead runs through
tools/pytest_main.py, which hands it to pytest with the same pytest.ini.
"""

def pytest_test(name, deps = [], data = [], **kwargs):
    """Declares py_test `name` running tests/<name>.py under pytest.

    Args:
      name: the test file's base name without ".py" (tests/<name>.py).
      deps: py_library targets that the test file imports. //:test_support
        (tests/conftest.py, tests/test_case.py, pytest.ini) is always added.
      data: files the test reads, and binaries it runs in a subprocess.
      **kwargs: further py_test attributes: size, timeout, tags, ...
    """
    src = "tests/%s.py" % name
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
