"""Offline stand-in for @rules_java//java:defs.bzl.

Bazel 4's @bazel_tools loads these names from @rules_java (its JDK toolchain
targets are registered for every build). Each one forwards to the rule built
into Bazel 4. keras-switch itself declares no Java targets.
"""

def java_binary(**attrs):
    native.java_binary(**attrs)

def java_import(**attrs):
    native.java_import(**attrs)

def java_library(**attrs):
    native.java_library(**attrs)

def java_plugin(**attrs):
    native.java_plugin(**attrs)

def java_proto_library(**attrs):
    native.java_proto_library(**attrs)

def java_runtime(**attrs):
    native.java_runtime(**attrs)

def java_test(**attrs):
    native.java_test(**attrs)

def java_toolchain(**attrs):
    native.java_toolchain(**attrs)
