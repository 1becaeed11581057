"""Sparse inference: latency and size of keras-switch's sparse export against
the dense stripped export, on CPU.

    python -m benchmarks.inference
    python -m benchmarks.inference --models=lenet300 --targets=0.95 --markdown

The models and exports: `inference_models.py`; sizes and timing:
`inference_measure.py`; targets and tables: `inference_report.py`. This
file holds the flags and writes the results.
"""

import os
import platform
import shutil
import tempfile
import time

import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from benchmarks import inference_measure
from benchmarks import inference_models
from benchmarks import inference_report
from benchmarks.harness import baselines
from benchmarks.harness import cli
from benchmarks.harness import report

FLAGS = flags.FLAGS


def define_flags():
    cli.define_models(["lenet300", "lenet5"])
    flags.DEFINE_list("targets", ["0.9", "0.95", "0.98"], "Target FC sparsities.")
    flags.DEFINE_list("batch_sizes", ["1", "256"], "Batch sizes to time.")
    flags.DEFINE_list("representations", ["dense", "sparse_matmul", "csr", "gather"],
                      "Forced representations of export_sparse timed besides 'auto' "
                      "('dense' is reported as export_sparse_dense).")
    flags.DEFINE_integer("rounds", 21, "Interleaved timing windows per candidate.")
    flags.DEFINE_float("window_ms", 40.0, "Target length of one timing window (ms).")
    flags.DEFINE_integer("unroll", 16, "serve() calls per tf.function call (graph mode).")
    flags.DEFINE_integer("warmup", 3, "Untimed windows per candidate before the rounds.")
    flags.DEFINE_integer("seed", 0, "Seed of the random init and the inputs.")
    flags.DEFINE_integer("train_epochs", 3,
                         "Epochs of dense training (plain Keras model, Fashion-MNIST, "
                         "Adam 1e-3, batch 128) before the masks are set; 0: random "
                         "init (the global threshold then empties fc1 at high targets).")
    cli.define_data(truncate=False, help="Fashion-MNIST IDX files (for --train_epochs).")
    flags.DEFINE_bool("tflite", True, "Also export, size and time TFLite files.")
    flags.DEFINE_float("tolerance", 0.05,
                       "'Never slower than dense' allows ratios up to 1 + tolerance "
                       "(the noise band; compare the dense control's ratio).")
    flags.DEFINE_string("workdir", None, "Keep the exports here (default: a temp dir, removed).")
    flags.DEFINE_string("output", "benchmarks/results/inference.json", "Results JSON.")
    cli.define_markdown("inference")
    flags.DEFINE_string("benchmarks_md", None,
                        "The BENCHMARKS.md to rewrite (default: the repo's).")


def main(argv):
    cli.check_no_arguments(argv)
    cli.check_known("models", FLAGS.models, baselines.MODELS)
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    start = time.perf_counter()
    options = inference_measure.Options(
        targets=tuple(float(t) for t in FLAGS.targets),
        representations=tuple(FLAGS.representations),
        batch_sizes=tuple(int(b) for b in FLAGS.batch_sizes),
        tflite=FLAGS.tflite, seed=FLAGS.seed, train_epochs=FLAGS.train_epochs,
        data_dir=FLAGS.data_dir, rounds=FLAGS.rounds, warmup=FLAGS.warmup,
        window_ms=FLAGS.window_ms, unroll=FLAGS.unroll)
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="ks_inference_")
    results = []
    try:
        for name in FLAGS.models:
            results.extend(inference_measure.run_model(name, workdir, options))
    finally:
        if not FLAGS.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    settings = {
        "models": FLAGS.models, "targets": list(options.targets),
        "batch_sizes": list(options.batch_sizes),
        "representations": [inference_models.candidate(r) for r in FLAGS.representations],
        "rounds": FLAGS.rounds,
        "window_ms": FLAGS.window_ms, "unroll": FLAGS.unroll, "warmup": FLAGS.warmup,
        "seed": FLAGS.seed, "tflite": FLAGS.tflite, "tolerance": FLAGS.tolerance,
        "weights": (f"plain dense model trained {FLAGS.train_epochs} epochs on Fashion-MNIST"
                    if FLAGS.train_epochs else "random init (glorot uniform), not trained"),
        "train_epochs": FLAGS.train_epochs,
        "threads": {
            "cpu_count": os.cpu_count(),
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "default",
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        },
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, TensorFlow {tf.__version__}",
    }
    payload = {"seconds": time.perf_counter() - start, "settings": settings,
               "results": results}
    payload["targets"] = inference_report.check_targets(results, FLAGS.tolerance)
    report.publish("inference", FLAGS.output, payload, inference_report.section,
                   FLAGS.markdown, path=FLAGS.benchmarks_md)


if __name__ == "__main__":
    define_flags()
    app.run(main)
