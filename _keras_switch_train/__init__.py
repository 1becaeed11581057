"""The `keras-switch-train` console script: trainers/train.py for an
installed keras-switch, no checkout needed.

    keras-switch-train --config=lenet300_fashion_mnist --workdir=/tmp/lenet300

The wheel ships the checkout's trainers/ and configs/ inside this package
(setup.py maps them to _keras_switch_train/trainers and
_keras_switch_train/configs) rather than as top-level `trainers` and
`configs`, which would shadow a user's own packages. `main()` puts the
directory holding them first on sys.path, so the trainer's `from trainers
import ...` and the configs' `from configs import common` find them, and
runs `trainers.train` as `python -m trainers.train` does: same flags, exit
statuses and absl behaviour. In a checkout (or an editable install) this
directory holds only this file and the checkout's trainers/ and configs/
are used.

--config takes a file, as for `python -m trainers.train`, or when no such
file exists the name of a shipped config: `lenet300_fashion_mnist`,
`lenet300_fashion_mnist.py` or `configs/lenet300_fashion_mnist.py` (README's
checkout path). Any other --config naming no file exits 2 with one `error:`
line listing the shipped configs, before anything is written. (A --config
inside a --flagfile is read as a path only.)

Standard library only, so TensorFlow starts where the trainer starts it,
after its checks; a module in keras_switch/ would load
keras_switch/__init__.py, and TensorFlow with it, first.
"""

import os
import re
import runpy
import sys

USAGE_ERROR = 2  # trainers/train.py's exit status for bad input
_HERE = os.path.dirname(os.path.abspath(__file__))


def train_root():
    """The directory holding trainers/ and configs/: this package's in an
    installed wheel, else the checkout's (this directory's parent)."""
    for candidate in (_HERE, os.path.dirname(_HERE)):
        if os.path.isfile(os.path.join(candidate, "trainers", "train.py")):
            return candidate
    raise RuntimeError(f"keras-switch is installed without its trainer: no trainers/ in {_HERE}")


def shipped_configs(root):
    """The names of the config files in `root`/configs (not common.py)."""
    return sorted(
        name[:-3] for name in os.listdir(os.path.join(root, "configs"))
        if name.endswith(".py") and not name.startswith(("_", "common"))
    )


def resolve_config(value, root):
    """`value` of --config with its file part (before any `:`, as
    ml_collections splits it) replaced by a shipped config's path when no
    such file exists.

    Raises:
        ValueError: no such file and no shipped config of that name; the
            message is one line listing the shipped configs.
    """
    path, colon, rest = value.partition(":")
    if os.path.exists(path):
        return value
    name = os.path.normpath(path) if path else path
    if os.path.dirname(name) == "configs":
        name = os.path.basename(name)
    name = name[:-3] if name.endswith(".py") else name
    names = shipped_configs(root)
    if name not in names:
        raise ValueError(
            f"--config={value}: no such file, nor the name of a config shipped "
            f"with keras-switch ({', '.join(names)}). Expected one of those or a "
            "Python file whose get_config() returns the config.")
    return os.path.join(root, "configs", name + ".py") + colon + rest


def resolve_argv(args, root):
    """`args` (the command line without the program) with every --config
    value resolved by `resolve_config`; absl's `--` ends the flags."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        match = re.match(r"^(--?config)(=(.*))?$", arg)
        if match and match.group(2):
            args[i] = f"{match.group(1)}={resolve_config(match.group(3), root)}"
        elif match and i + 1 < len(args):  # --config FILE
            args[i + 1] = resolve_config(args[i + 1], root)
    return args


def main():
    root = train_root()
    try:
        args = resolve_argv(sys.argv[1:], root)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    sys.path.insert(0, root)
    sys.argv[1:] = args
    # What `python -m trainers.train` runs: it ends with sys.exit(status).
    runpy.run_module("trainers.train", run_name="__main__", alter_sys=True)
    return 0
