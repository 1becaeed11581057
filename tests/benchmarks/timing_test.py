"""benchmarks.harness.timing: the interleaved rounds and their statistics, on fake
windows (no clock involved)."""

import gc
from unittest import mock

import numpy as np
import tensorflow as tf

from benchmarks.harness import timing
from tests.test_case import TestCase


def _recording(log, names, values=None):
    """{name: fn} whose calls append the name to `log` and return the next
    of `values[name]` (default 1.0)."""
    values = {name: iter(values[name]) for name in names} if values else None

    def window(name):
        log.append(name)
        return next(values[name]) if values else 1.0

    return {name: (lambda name=name: window(name)) for name in names}


class InterleaveTest(TestCase):
    def test_warmup_then_rounds_in_alternating_order(self):
        log = []
        windows = _recording(log, ["a", "b", "c"],
                             {"a": [9, 1, 2, 3], "b": [9, 4, 5, 6], "c": [9, 7, 8, 9]})
        measured = timing.interleave(windows, rounds=3, warmup=1)
        self.assertEqual(log, ["a", "b", "c",             # warm-up, dict order
                               "a", "b", "c", "c", "b", "a", "a", "b", "c"])
        # The warm-up windows are not kept.
        self.assertEqual(measured, {"a": [1, 2, 3], "b": [4, 5, 6], "c": [7, 8, 9]})

    def test_gc_is_paused_only_during_the_rounds_when_asked(self):
        seen = []

        def window():
            seen.append(gc.isenabled())
            return 0.0

        self.assertTrue(gc.isenabled())
        timing.interleave({"a": window}, rounds=2, warmup=1, pause_gc=True)
        self.assertEqual(seen, [True, False, False])
        self.assertTrue(gc.isenabled())
        seen.clear()
        timing.interleave({"a": window}, rounds=2, warmup=1)
        self.assertEqual(seen, [True, True, True])

    def test_gc_is_turned_back_on_when_a_window_fails(self):
        def window():
            raise RuntimeError("boom")

        with self.assertRaisesRegex(RuntimeError, "boom"):
            timing.interleave({"a": window}, rounds=1, pause_gc=True)
        self.assertTrue(gc.isenabled())


class WindowTest(TestCase):
    def test_calls_and_waits_for_the_last_result(self):
        results = [mock.Mock() for _ in range(4)]
        run = mock.Mock(side_effect=results)
        self.assertGreaterEqual(timing.window(run, 4), 0.0)
        self.assertEqual(run.call_count, 4)
        results[-1].numpy.assert_called_once_with()
        for result in results[:-1]:
            result.numpy.assert_not_called()

    def test_calls_for_fills_the_window(self):
        with mock.patch.object(timing, "window", return_value=0.003) as window:
            # 1 ms per call: 40 calls in 40 ms.
            self.assertEqual(timing.calls_for("run", 40.0), 40)
        window.assert_called_once_with("run", 3)
        with mock.patch.object(timing, "window", return_value=3.0):
            self.assertEqual(timing.calls_for("run", 40.0), 1)  # at least one


class SummaryTest(TestCase):
    def test_medians_and_paired_ratios(self):
        # Round 2 ran under load, both slower. The per-round ratios are 2, 2
        # and 3: median 2x; the ratio of the medians would say 3x.
        measured = {"dense": np.array([1.0, 3.0, 1.0]), "sparse": [2.0, 6.0, 3.0]}
        out = timing.summary(measured, "dense", scale=1000.0)
        self.assertEqual(out["ms"], {"dense": 1000.0, "sparse": 3000.0})
        self.assertEqual(out["ratio"], {"sparse": 2.0})
        self.assertIsInstance(out["ratio"]["sparse"], float)
        self.assertEqual(timing.summary(measured, "dense")["ms"]["dense"], 1.0)


if __name__ == "__main__":
    tf.test.main()
