"""Writing a run's JSON files so that a kill at any instant leaves either the
old file or the new one, never a torn one: config.json (preflight.py),
checkpoints/state.json (checkpoints.py) and report.json (train_lib.py).

Standard library only, so the checks that run before TensorFlow starts
(preflight.py) can write config.json.
"""

import json
import os
import tempfile


def write_json(path, value):
    """Writes `value` as indented JSON to `path`, atomically.

    The text goes to a temporary file beside `path`, is flushed to disk, and
    then replaces `path` in one rename, so readers (a resumed run, a report
    reader) see the old file or the new one, whole.

    Args:
        path: the file to write; its directory must exist.
        value: anything `json.dump` can write.

    Raises:
        OSError: if the directory cannot be written or the disk is full.
        TypeError: if `value` is not JSON-serializable.
        In both cases `path` is left as it was (a `*.tmp` file beside it may
        remain).
    """
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)
