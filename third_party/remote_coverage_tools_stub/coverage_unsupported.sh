#!/bin/sh
# Stand-in for Bazel's coverage tools (see BUILD): `bazel test` never runs it.
echo "bazel coverage is not supported in this offline workspace" >&2
exit 1
