"""Sizes of exported files: on disk and after `gzip -9`."""

import os
import zlib


def raw_size(path):
    """Bytes of a file, or the sum over the files under a directory.

    Raises:
        FileNotFoundError: if `path` does not exist.
    """
    return sum(os.path.getsize(file) for file in _files(path))


def gzip_size(path):
    """Bytes of a file, or of every file under a directory, after `gzip -9`.

    Each file is compressed on its own (level 9, mtime 0, no file name: the
    bytes of `gzip.compress(data, 9, mtime=0)`) in sorted path order and the
    sizes are summed: the number depends on the contents only. Files are
    streamed, so memory stays small for large models.

    Raises:
        FileNotFoundError: if `path` does not exist.
    """
    total = 0
    for file in _files(path):
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(compressor.compress(chunk))
        total += len(compressor.flush())
    return total


def _files(path):
    """`[path]` for a file, else the files under the directory `path`,
    sorted."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or directory: {path!r}")
    if os.path.isfile(path):
        return [path]
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names
    )
