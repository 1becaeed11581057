"""The binary's flag parsing: absl's, with every error it can raise turned
into a `ConfigError` whose message is one line naming the argument.

trainers/train.py hands `parse_flags` to `app.run` and prints such an error
as `error: <message>`, exiting 2, before `main` runs: absl would print a
usage text, and ml_collections a bare AttributeError or a whole traceback,
for an unknown `--config.<key>`, a value of the wrong type or a --config
file that does not load. `--config.<key>=None`, which absl cannot parse, is
read here.

Nothing here imports TensorFlow, Keras or keras_switch (a test checks it).
"""

import re

from absl import flags
from ml_collections.config_flags import config_flags

from trainers.preflight import ConfigError


def parse_flags(flag_values, argv):
    """absl's flag parsing, `flag_values(argv)`, with its errors raised as
    ConfigError.

    ml_collections reports an override of a key the config does not have
    (`--config.no_such_key=1`) as a bare AttributeError; that is turned into
    a message naming the override.

    `--config.<key>=None` sets a key whose default may be None (a typed
    placeholder, such as `target_sparsity` or `accuracy_budget`) to None,
    which absl's number parsers cannot read; it is applied after the other
    flags, so it wins over another override of the same key.

    Args:
        flag_values: the binary's `absl.flags.FLAGS`, with a `config` flag
            defined by `config_flags.DEFINE_config_file`.
        argv: the command line, program name first (as `app.run` passes it).

    Returns:
        What `flag_values(argv)` returns: the program name and the arguments
        that are not flags.

    Raises:
        ConfigError: for an unknown flag or `--config.<key>`, a value absl
            cannot parse or a validator refuses, a missing required flag, or
            a --config file that fails to load; the message is one line.
        Exception: anything else parsing raises, unchanged (a bug, not bad
            input: its traceback is wanted).
    """
    kept, nulls = _none_overrides(argv)
    try:
        remaining = flag_values(kept)
        for path, _ in nulls:
            _set_none(flag_values, path)
        return remaining
    except Exception as error:  # pylint: disable=broad-except
        loading = _config_load_error(error)
        if loading is not None:  # the config file failed to load
            raise ConfigError(config_file_message(argv, loading)) from None
        if isinstance(error, flags.Error):
            raise ConfigError(
                f"{str(error).rstrip('.')}. Pass --helpfull to see the flags.") from None
        if isinstance(error, OSError):  # ml_collections: the config file failed to load
            raise ConfigError(config_file_message(argv, error)) from None
        message = None
        if isinstance(error, (AttributeError, KeyError)):
            message = _unknown_key_message(argv, error)
        if message is None:
            raise
        raise ConfigError(message) from None


def _config_load_error(error):
    """What loading the --config file raised (a SyntaxError, an ImportError,
    anything its get_config() raised) if `error`, or an exception it was
    raised while handling, came from there; else None.

    ml_collections lets such an error propagate out of absl's flag parsing,
    except a TypeError or ValueError, which it re-raises with the whole
    traceback in its text (and absl wraps that in a flags.Error): then the
    original, the innermost one raised there, is returned."""
    parse = config_flags.ConfigFileFlagParser.parse.__code__

    def raised_there(exception):
        tb = exception.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code is parse:
                return True
            tb = tb.tb_next
        return False

    seen = error
    while seen is not None:
        if raised_there(seen):
            while seen.__context__ is not None and raised_there(seen.__context__):
                seen = seen.__context__
            return seen
        seen = seen.__context__
    return None


def _none_overrides(argv):
    """`argv` without its `--config.<key>=None` arguments, and those as
    [(key, argument)]."""
    kept, nulls = [], []
    for index, arg in enumerate(argv):
        match = re.match(r"^--?config\.([^=\s]+)=None$", arg) if index else None
        if match:
            nulls.append((match.group(1), arg))
        else:
            kept.append(arg)
    return kept, nulls


def _set_none(flag_values, path):
    """Sets config key `path` (dotted) to None. ml_collections has already
    refused a key the config lacks; a key that may not be None (a count, the
    seed) is refused by check_config, naming it."""
    node = flag_values["config"].value
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = None


# -- absl's and ml_collections' messages, reworded --------------------------


def _unknown_key_message(argv, error):
    """The message for `--config.<path>` naming a key the config lacks, or
    None when `error` (ml_collections' AttributeError or KeyError) is not
    about an override in `argv`."""
    overrides = [
        (match.group(1), arg)
        for arg in argv[1:]
        for match in [re.match(r"^--?config\.([^=\s]+)", arg)]
        if match
    ]
    # The exception's text is the missing key in quotes, then possibly
    # ml_collections' "Did you mean ..." hint.
    text = str(error).strip("\"'")
    quoted = re.search(r"'([^']+)'", str(error))
    key = quoted.group(1) if quoted else text
    culprits = [arg for path, arg in overrides if key in path.split(".")]
    if not culprits:
        return None
    hint = re.search(r"Did you mean \"[^\"]+\" instead of \"[^\"]+\"\?", str(error))
    return (
        f"unknown config key: {culprits[0]} ({key!r} is not a key of "
        f"--config={_config_path(argv)}). Overrides must name an existing "
        "key, see docs/trainer.md (Config keys)."
        + (f" {hint.group(0)}" if hint else "")
    )


def config_file_message(argv, error):
    """The one-line message for a --config file that failed to load.

    Args:
        argv: the command line; the --config file is read from it.
        error: the OSError ml_collections raises when the config is used
            after a failed load, or what loading raised (a SyntaxError, an
            ImportError, anything get_config() raised), whose type is named.

    Returns:
        `--config=<file>: <reason>. Expected a Python file whose get_config()
        returns the config (see configs/).`
    """
    reason = " ".join(str(error).split())
    reason = reason.replace(
        "Configuration is not available because of an earlier failure to load: ", ""
    )
    if not isinstance(error, OSError):
        reason = f"{type(error).__name__}: {reason}"
    return (f"--config={_config_path(argv)}: {reason.rstrip('.')}. Expected a Python "
            "file whose get_config() returns the config (see configs/).")


def _config_path(argv):
    """The --config file named in `argv` (the last one, as absl does)."""
    found = "?"
    for i, arg in enumerate(argv):
        match = re.match(r"^--?config(=(.*))?$", arg)
        if match:
            found = match.group(2) if match.group(1) else (
                argv[i + 1] if i + 1 < len(argv) else "?"
            )
    return found
