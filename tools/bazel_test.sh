#!/usr/bin/env bash
# Runs `bazel test //...` with the project's virtualenv, then prints
#   bazel: N passed, N failed
# and exits with Bazel's status (0: all passed, 3: a test failed, 1: a build
# error...). `make bazel-test` and .ci/run call it; docs/testing.md ("Bazel") has
# the details.
#
#   VENV=.venv tools/bazel_test.sh [bazel test options...]
#
# Installs Bazel 4 (Debian's bazel-bootstrap, offline-capable) with apt-get
# when `bazel` is missing, as root or with passwordless sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python3" ]; then
  echo "error: no virtualenv at $VENV (run \`make setup\` first)" >&2
  exit 2
fi

if ! command -v bazel >/dev/null 2>&1; then
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  echo "Installing Bazel (Debian's bazel-bootstrap) with apt-get..."
  if ! { $SUDO apt-get update -qq &&
         $SUDO apt-get install -y -qq --no-install-recommends bazel-bootstrap >/dev/null; }; then
    echo "error: could not install bazel-bootstrap (needs apt-get as root or passwordless sudo)" >&2
    exit 2
  fi
fi

# Bazel's Python toolchain runs the first python3 on PATH (.bazelrc passes
# PATH to the tests): the virtualenv's.
export PATH="$(cd "$VENV" && pwd)/bin:$PATH"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
bazel test //... "$@" 2>&1 | tee "$log" || status=$?
# The Bazel server (a JVM) would otherwise idle for hours after CI is done.
bazel shutdown >/dev/null 2>&1 || true

# One summary line per test target: "//:name   PASSED in 6.4s", "(cached)
# PASSED", "FAILED in ...", "TIMEOUT in ...", "FLAKY, ...", "NO STATUS",
# "FAILED TO BUILD"...
passed="$(grep -cE '^//[^ ]* +(\(cached\) )?PASSED' "$log" || true)"
failed="$(grep -E '^//[^ ]* +' "$log" | grep -vcE '^//[^ ]* +(\(cached\) )?PASSED' || true)"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "bazel test exited with status $status before running the tests (see above)"
fi
echo "bazel: $passed passed, $failed failed"
exit "$status"
