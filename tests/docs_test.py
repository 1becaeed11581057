"""The documentation (docs/, README.md) says what the code does:

* every ```python block of every docs/ page runs as written, the page's
  blocks in order in one fresh interpreter (`tests.readme_test.run_page`);
  these are the slow tier, which `make docs` also runs;
* the trainer page lists every flag of `trainers/train.py` and every config
  key of `configs/common.py`;
* every public name has a docstring and an API reference entry
  (`tools/check_docs.py`, which `make docs` runs too);
* README stays short, and its relative links point at files that exist.
"""

import glob
import importlib.util
import os
import re

import pytest
import tensorflow as tf
from absl.testing import parameterized

import keras_switch
from configs import common
from tests.helpers import ROOT
from tests.readme_test import README
from tests.readme_test import PageTestCase
from tests.readme_test import runnable_blocks

PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
# The pages with blocks to run, by file name.
RUNNABLE = [os.path.basename(page) for page in PAGES if runnable_blocks(page)]
# README's length, in lines, that a change should not grow it past: the
# details go to docs/.
README_MAX_LINES = 150
# A markdown link's target: [text](target).
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _config_keys(config):
    """The config's keys, and `.child` for each key of a nested config."""
    keys = []
    for key, value in config.items():
        keys.append(f"`{key}`")
        if hasattr(value, "keys"):
            keys += [f"`.{child}`" for child in value.keys()]
    return keys


@pytest.mark.slow
class PageBlocksTest(PageTestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        *[(re.sub(r"\W", "_", page[:-3]), page) for page in RUNNABLE])
    def test_blocks_run_in_order(self, page):
        self.assertPageRuns(os.path.join(ROOT, "docs", page))


class PagesTest(PageTestCase):
    def test_the_guides_have_runnable_blocks(self):
        self.assertContainsSubset(["pretrained.md", "guide.md", "accuracy-budget.md",
                                   "convolutions.md", "export.md", "tfmot-migration.md"],
                                  RUNNABLE)

    def test_the_trainer_page_lists_every_flag_and_config_key(self):
        page = _read(os.path.join(ROOT, "docs", "trainer.md"))
        source = _read(os.path.join(ROOT, "trainers", "train.py"))
        flags = re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)
        self.assertContainsSubset({"config", "workdir", "strategy"}, flags)
        for flag in flags:
            self.assertIn(f"`--{flag}`", page)
        for key in _config_keys(common.base_config("lenet300", "fashion_mnist")):
            self.assertIn(key, page)

    def test_every_public_name_has_a_docstring_and_a_reference_entry(self):
        spec = importlib.util.spec_from_file_location(
            "check_docs", os.path.join(ROOT, "tools", "check_docs.py"))
        check_docs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(check_docs)
        api = _read(os.path.join(ROOT, "docs", "api.md"))
        self.assertEqual(check_docs.problems(keras_switch, api), [])
        # The check sees a name that is missing.
        self.assertNotEmpty(check_docs.problems(keras_switch, api.replace(
            "::: keras_switch.switch_model\n", "")))

    def test_readme_is_short_and_its_links_resolve(self):
        text = _read(README)
        self.assertLessEqual(text.count("\n"), README_MAX_LINES)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            with self.subTest(link=target):
                self.assertTrue(os.path.exists(os.path.join(ROOT, target.split("#")[0])),
                                f"README.md links to {target}, which does not exist")


if __name__ == "__main__":
    tf.test.main()
