"""Every measured figure in README.md, BENCHMARKS.md and the pages of docs/
outside a generated section has a source: the paragraph (list item, or table
with the text above it) names a committed result under benchmarks/results/
that exists, or says `historical (<commit>)` for a figure whose run was not
committed, naming the commit that first wrote it.

The generated sections themselves are checked byte for byte against their
JSON by tests/benchmarks/report_test.py and
tests/benchmarks/readme_results_test.py; code blocks are run by
tests/readme_test.py and tests/docs_test.py.
"""

import glob
import os
import re
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DOCS = ("README.md", "BENCHMARKS.md") + tuple(
    os.path.relpath(page, ROOT) for page in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))))
# What a measured figure looks like: an accuracy (0.8891), a mean ± error, a
# signed difference in points, a ratio (1.08x), a time or a size. Settings (batch
# 128, targets like 99.5%, Adam 1e-3, a budget of 0.5 pt or 0.005) do not match.
MEASURED = re.compile(
    r"\b0\.(?!00)\d{3,4}\b"                  # an accuracy or sparsity as a fraction
    r"|±"                                   # a mean and its error
    r"|[+−]\d+(\.\d+)? ?pt\b"               # a difference in points
    r"|\b\d+\.\d+ ?x\b"                     # a ratio
    r"|\b\d+(\.\d+)? ?(ms|µs|s|min|MiB|KiB|KB|MB|GB)\b"  # a time or a size
)
# Constants of the protocol rather than results: the standardisation
# statistics the data code computes (keras_switch/data.py).
SETTINGS = ("0.2860", "0.3530", "0.1307", "0.3081")
SOURCE = re.compile(r"benchmarks/results/[\w./-]+\.json")
HISTORICAL = re.compile(r"historical \(`?([0-9a-f]{7,40})`?")


def units(text):
    """The paragraphs of `text` outside generated sections and code blocks,
    each top-level list item its own unit and each table joined to the text
    before it."""
    text = re.sub(r"<!-- (\w+):begin.*?<!-- \1:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out = []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        if block.startswith("|") and out:
            out[-1] += "\n" + block
            continue
        out += [item for item in re.split(r"\n(?=[-*] )", block) if item.strip()]
    return out


def figures(unit):
    masked = unit
    for setting in SETTINGS:
        masked = masked.replace(setting, "")
    return [m.group(0) for m in MEASURED.finditer(masked)]


def _commit_exists(commit):
    result = subprocess.run(["git", "cat-file", "-e", commit + "^{commit}"], cwd=ROOT,
                            capture_output=True)
    return result.returncode == 0


class DocsNumbersTest(unittest.TestCase):
    def test_the_checker_sees_figures_and_sources(self):
        self.assertEqual(figures("test accuracy 0.8891 in 49 s, 1.08x, +0.21 ± 0.11, +0.5 pt"),
                         ["0.8891", "49 s", "1.08x", "±", "+0.5 pt"])
        self.assertEqual(figures("batch 128, Adam 1e-3, targets 90–99.5%, a budget of 0.5 pt or 0.005, (x - 0.2860)"), [])
        self.assertEqual(units("a\n\n- b\n- c\n\n| t |\n|---|\n\n```\n0.99\n```\n"),
                         ["a", "- b", "- c\n| t |\n|---|"])

    def test_every_measured_figure_has_a_source(self):
        git = os.path.isdir(os.path.join(ROOT, ".git"))
        for doc in DOCS:
            with open(os.path.join(ROOT, doc)) as f:
                text = f.read()
            for unit in units(text):
                found = figures(unit)
                if not found:
                    continue
                with self.subTest(doc=doc, unit=unit[:120]):
                    sources = [m.group(0) for m in SOURCE.finditer(unit)]
                    commits = HISTORICAL.findall(unit)
                    self.assertTrue(
                        sources or commits,
                        f"{doc}: figures {found[:5]} name no committed result "
                        f"(benchmarks/results/...) and are not marked `historical (<commit>)`:"
                        f"\n{unit[:600]}")
                    for source in sources:
                        self.assertTrue(os.path.exists(os.path.join(ROOT, source)),
                                        f"{doc} cites {source}, which does not exist")
                    if git:
                        for commit in commits:
                            self.assertTrue(_commit_exists(commit),
                                            f"{doc} cites commit {commit}, not in this "
                                            "repository's history")


if __name__ == "__main__":
    unittest.main()
