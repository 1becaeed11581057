"""Offline stand-in for @rules_cc//cc:defs.bzl.

Bazel 4's @bazel_tools loads these names from @rules_cc. Each one forwards to
the rule built into Bazel 4, which is what the real rules_cc of that time did.
keras-switch itself declares no C++ targets.
"""

def cc_binary(**attrs):
    native.cc_binary(**attrs)

def cc_import(**attrs):
    native.cc_import(**attrs)

def cc_library(**attrs):
    native.cc_library(**attrs)

def cc_proto_library(**attrs):
    native.cc_proto_library(**attrs)

def cc_test(**attrs):
    native.cc_test(**attrs)

def cc_toolchain(**attrs):
    native.cc_toolchain(**attrs)

def cc_toolchain_suite(**attrs):
    native.cc_toolchain_suite(**attrs)

def objc_library(**attrs):
    native.objc_library(**attrs)
