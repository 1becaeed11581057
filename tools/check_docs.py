"""Checks what MkDocs cannot: every public name of keras_switch (its
`__all__`) has a docstring of its own and an entry in the API reference
(`::: <path>` in docs/api.md, any path to the same object), and every entry
there names something that exists. `make docs` runs it before
`mkdocs build --strict`; it prints each problem and exits with status 1.

    python tools/check_docs.py
"""

import importlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "docs", "api.md")
ENTRY = re.compile(r"^::: *([\w.]+) *$", re.M)


def resolve(path):
    """The object a dotted `path` names (the longest importable module
    prefix, then attributes), or None."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def problems(package, api_text):
    """The sentences saying what is missing, [] when nothing is."""
    found = []
    entries = {path: resolve(path) for path in ENTRY.findall(api_text)}
    for path, obj in entries.items():
        if obj is None:
            found.append(f"docs/api.md: `::: {path}` names nothing")
    documented = [id(obj) for obj in entries.values() if obj is not None]
    for name in package.__all__:
        obj = getattr(package, name, None)
        if obj is None:
            found.append(f"{package.__name__}.__all__ lists {name}, which it does not define")
            continue
        if not (getattr(obj, "__doc__", None) or "").strip():
            found.append(f"{package.__name__}.{name} has no docstring")
        if id(obj) not in documented:
            found.append(f"{package.__name__}.{name} has no entry in docs/api.md "
                         f"(add `::: {package.__name__}.{name}`)")
    return found


def main():
    sys.path.insert(0, ROOT)
    package = importlib.import_module("keras_switch")
    with open(API, encoding="utf-8") as f:
        found = problems(package, f.read())
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"check_docs: {len(package.__all__)} public names, each with a docstring and an "
          "API reference entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
