"""Runs one test file with pytest, as `make test` does: main of each py_test.

    python tools/pytest_main.py tests/model_test.py [pytest arguments...]

The BUILD file's pytest_test targets (tools/pytest.bzl) run this script with
their test file as the first argument, from the workspace root of the runfiles
tree. pytest then reads the repository's pytest.ini and tests/conftest.py, so
tests marked `slow` are deselected and warnings are errors, as under `make
test`. Further arguments go to pytest; for example `bazel test //...
--test_arg=-m --test_arg=` runs the slow tier too (an empty `-m` selects
every test, like `make test-all`).
"""

import os
import sys

import pytest

# The workspace root: this file is <root>/tools/pytest_main.py. abspath, not
# realpath: under Bazel the runfiles tree holds symlinks to the sources, and
# the root must be the runfiles one, where the tests' data lies.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Deselected:
    """pytest plugin counting the tests that `-m` deselected."""

    def __init__(self):
        self.count = 0

    def pytest_deselected(self, items):
        self.count += len(items)


def main(argv):
    if len(argv) < 2:
        sys.exit(f"usage: {argv[0]} TEST_FILE [PYTEST_ARGS...]")
    test_file = argv[1]
    args = [
        os.path.join(ROOT, test_file),
        "-c", os.path.join(ROOT, "pytest.ini"),
        "--rootdir", ROOT,
        "-q",
    ]
    # Bazel asks for a JUnit XML report here; it then lists every test case.
    if os.environ.get("XML_OUTPUT_FILE"):
        args.append("--junitxml=" + os.environ["XML_OUTPUT_FILE"])
    deselected = _Deselected()
    code = pytest.main(args + argv[2:], plugins=[deselected])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and deselected.count:
        # `-m "not slow"` deselected every test in the file (tfmot_env_test):
        # skipped, as under `make test`, not a failure. A file with no tests
        # at all still fails.
        print(f"{test_file}: all {deselected.count} tests deselected by -m")
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
