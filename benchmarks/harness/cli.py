"""The absl flags the benchmarks share, and checks of their values. Each
benchmark defines its flags in `define_flags()`, only when run as a
program: absl refuses a flag defined twice in one test process."""

from absl import app
from absl import flags

from benchmarks.harness import cache
from benchmarks.harness import data
from benchmarks.harness import lenet

FLAGS = flags.FLAGS


def define_data(truncate=True, help="Directory of the Fashion-MNIST IDX files."):
    """--data_dir; with `truncate`, --max_train_examples, --max_test_examples."""
    flags.DEFINE_string("data_dir", data.DATA_DIR, help)
    if truncate:
        flags.DEFINE_integer("max_train_examples", None, "Truncate the training set (smoke runs).")
        flags.DEFINE_integer("max_test_examples", None, "Truncate the test set (smoke runs).")


def define_cache(output_dir):
    """--output_dir (runs and results) and --rerun: the run cache's flags."""
    flags.DEFINE_string("output_dir", output_dir, "Where runs and results go.")
    flags.DEFINE_bool("rerun", False, "Train again even where a run's JSON exists with the "
                      "same key (code, config, data); a changed key trains again anyway.")


def define_markdown(section):
    flags.DEFINE_bool("markdown", False, f"Rewrite the {section} section of BENCHMARKS.md.")


def define_models(default):
    flags.DEFINE_list("models", list(default), f"Models, of {lenet.MODELS}.")


def define_budget(epochs=None, batch_size=None, learning_rate=None, switch_every=False):
    """Those of --epochs, --batch_size, --learning_rate given a default, and
    (`switch_every=True`) --switch_every (default: the recipe's)."""
    if epochs is not None:
        flags.DEFINE_integer("epochs", epochs, "Epochs of every run (the same budget).")
    if batch_size is not None:
        flags.DEFINE_integer("batch_size", batch_size, "Batch size of every run.")
    if learning_rate is not None:
        flags.DEFINE_float("learning_rate", learning_rate, "Adam learning rate of the baselines.")
    if switch_every:
        flags.DEFINE_integer("switch_every", None,
                             "Mask update interval of keras-switch and the gradual baselines "
                             "(default: the recipe's schedule.switch_every).")


def check_no_arguments(argv):
    """Raises app.UsageError when `argv` holds more than the program."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")


def check_known(flag, values, known):
    """Raises app.UsageError naming the `values` of --`flag` not in `known`."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {unknown}; expected some of {sorted(known)}")


def load_data():
    """The data the data flags ask for (`data.load_data`)."""
    return data.load_data(FLAGS.data_dir, FLAGS.max_train_examples, FLAGS.max_test_examples)


def run_cache(label, arrays, sources=()):
    """The run cache the flags ask for (--output_dir, --rerun), for runs on
    `arrays` (read from --data_dir; see `cache.RunCache`)."""
    return cache.RunCache(FLAGS.output_dir, label, data.identity(FLAGS.data_dir, arrays),
                          rerun=FLAGS.rerun, sources=sources)
