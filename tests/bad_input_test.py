"""Bad input to the training binary: a clear message, exit 2, nothing written.

Every row runs `python -m trainers.train` on one bad input against a workdir
that holds a previous run's files (or, where the workdir itself is the bad
input, against that file or directory) and checks the exit status, the
`error: ...` line (pinned by a regex naming the value) and that every file
and directory there kept its bytes, mode and modification time.

Most subprocesses import TensorFlow (seconds each), so setUpClass runs them
all at once on a few threads and the rows assert on the stored results
(BAD_INPUT_TIMES=1 prints each subprocess's wall time to stderr).
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from tests.helpers import ROOT
from tests.helpers import save_dense_lenet300
from tests.helpers import small_config
from tests.helpers import write_cifar
from tests.helpers import write_idx
from tests.helpers import write_pickle
from tests.helpers import write_split
from tests.test_case import TestCase

# A valid run of helpers.small_config: each row changes one thing.
BASE_ARGS = (
    "--config=configs/lenet300_fashion_mnist.py", "--config.data_dir={mnist}",
    "--config.num_epochs=3", "--config.batch_size=32",
    "--config.schedule.ramp_epochs=1", "--config.schedule.freeze_epochs=1",
    "--config.schedule.switch_every=1",
)
MULTI_WORKER = ("--strategy=multi_worker",)
TWO_WORKERS = {"worker": ["localhost:12345", "localhost:12346"]}

# (name, extra flags, extra environment, pinned stderr regex, workdir kind).
# Workdir kinds: "run" a directory holding a previous run's files; "file" a
# regular file; "under_file" a path below a regular file; "read_only" a
# run directory with mode 0o500.
ROWS = (
    ("unknown_flag", ["--no_such_flag=1"], {},
     r"error: Unknown command line flag 'no_such_flag'\. Pass --helpfull to see "
     r"the flags", "run"),
    ("unknown_config_key", ["--config.no_such_key=1"], {},
     r"error: unknown config key: --config\.no_such_key=1 \('no_such_key' is "
     r"not a key of --config=configs/lenet300_fashion_mnist\.py\)", "run"),
    ("wrong_type_string", ["--config.batch_size=abc"], {},
     r"error: flag --config\.batch_size=abc: invalid literal for int\(\) with "
     r"base 10: 'abc'", "run"),
    ("wrong_type_float_for_int", ["--config.num_epochs=1.5"], {},
     r"error: flag --config\.num_epochs=1\.5: invalid literal for int\(\)", "run"),
    ("missing_config_file", ["--config=configs/no_such_config.py"], {},
     r"error: --config=configs/no_such_config\.py: .*No such file or "
     r"directory: 'configs/no_such_config\.py'", "run"),
    ("broken_config_file", ["--config={broken_config}"], {},
     r"error: --config=.*/broken_config\.py: SyntaxError: invalid syntax "
     r"\(broken_config\.py, line 1\)\. Expected a Python file whose get_config\(\) "
     r"returns the config", "run"),
    ("learning_rate_zero", ["--config.task_optimizer.learning_rate=0"], {},
     r"error: config\.task_optimizer\.learning_rate must be > 0\. Received: 0\.0",
     "run"),
    ("learning_rate_negative", ["--config.switch_optimizer.learning_rate=-0.01"], {},
     r"error: config\.switch_optimizer\.learning_rate must be > 0\. "
     r"Received: -0\.01", "run"),
    ("batch_size_zero", ["--config.batch_size=0"], {},
     r"error: config\.batch_size must be a positive integer\. Received: 0", "run"),
    ("num_epochs_zero", ["--config.num_epochs=0"], {},
     r"error: config\.num_epochs must be a positive integer\. Received: 0", "run"),
    ("checkpoint_every_zero", ["--config.checkpoint_every_epochs=0"], {},
     r"error: config\.checkpoint_every_epochs must be a positive integer\. "
     r"Received: 0", "run"),
    ("validation_examples_zero", ["--config.target_sparsity=None",
                                  "--config.accuracy_budget=0.01",
                                  "--config.validation_examples=0"], {},
     r"error: config\.validation_examples must be a positive integer\. Received: 0",
     "run"),
    ("unknown_optimizer", ["--config.task_optimizer.name=adagrad"], {},
     r"error: config\.task_optimizer\.name must be one of \('adam', 'sgd', 'adamw', "
     r"'rmsprop'\)\. Received: 'adagrad'", "run"),
    ("schedule_epochs_negative", ["--config.schedule.warmup_epochs=-1"], {},
     r"error: config\.schedule\.warmup_epochs must be an integer >= 0\. "
     r"Received: -1", "run"),
    # 2 warm-up epochs + 1 frozen epoch leave none of the 3 to switch in.
    ("no_switching_epoch", ["--config.schedule.warmup_epochs=2"], {},
     r"error: config\.schedule\.warmup_epochs \+ freeze_epochs must leave at least "
     r"one switching epoch of config\.num_epochs=3\. Received: warmup_epochs=2, "
     r"freeze_epochs=1", "run"),
    # Checked by the library objects built from the config (trainers/build.py).
    ("target_sparsity_one", ["--config.target_sparsity=1.0"], {},
     r"error: config\.target_sparsity=1\.0: Received an invalid value for "
     r"`target_sparsity`, expected a float in \[0, 1\)\. Received: target_sparsity=1\.0",
     "run"),
    ("target_sparsity_negative", ["--config.target_sparsity=-0.1"], {},
     r"error: config\.target_sparsity=-0\.1: .*expected a float in \[0, 1\)", "run"),
    ("both_sparsity_controls", ["--config.sparsity_penalty=0.1"], {},
     r"error: config\.target_sparsity=0\.9: Pass either `target_sparsity` or "
     r"`sparsity_penalty`, not both\. Received: target_sparsity=0\.9, "
     r"sparsity_penalty=0\.1", "run"),
    ("sparsity_penalty_negative", ["--config.target_sparsity=None",
                                   "--config.sparsity_penalty=-0.1"], {},
     r"error: config\.sparsity_penalty=-0\.1: .*Received: .*-0\.1", "run"),
    # `--config.<key>=None` is read by trainers/flag_parsing.py, not absl.
    ("none_for_a_count", ["--config.batch_size=None"], {},
     r"error: config\.batch_size must be a positive integer\. Received: None", "run"),
    ("none_for_a_learning_rate", ["--config.task_optimizer.learning_rate=None"], {},
     r"error: config\.task_optimizer\.learning_rate must be > 0\. Received: None",
     "run"),
    ("none_for_an_unknown_key", ["--config.no_such_key=None"], {},
     r"error: unknown config key: --config\.no_such_key=None \('no_such_key' is not a "
     r"key of --config=configs/lenet300_fashion_mnist\.py\)", "run"),
    ("budget_and_target", ["--config.accuracy_budget=0.005"], {},
     r"error: config\.accuracy_budget=0\.005 and config\.target_sparsity=0\.9: give "
     r"one sparsity control\. .*--config\.target_sparsity=None "
     r"--config\.accuracy_budget=0\.005", "run"),
    ("budget_and_penalty", ["--config.target_sparsity=None", "--config.sparsity_penalty=0.1",
                            "--config.accuracy_budget=0.01"], {},
     r"error: config\.accuracy_budget=0\.01 and config\.sparsity_penalty=0\.1: give one",
     "run"),
    ("budget_zero", ["--config.target_sparsity=None", "--config.accuracy_budget=0.0"], {},
     r"error: config\.accuracy_budget=0\.0: .*expected a fraction in \(0, 1\)", "run"),
    ("budget_one", ["--config.target_sparsity=None", "--config.accuracy_budget=1.0"], {},
     r"error: config\.accuracy_budget=1\.0: .*expected a fraction in \(0, 1\)", "run"),
    ("budget_without_frozen_tail", ["--config.target_sparsity=None",
                                    "--config.accuracy_budget=0.01",
                                    "--config.schedule.freeze_epochs=0"], {},
     r"error: config\.schedule\.freeze_epochs=0: AccuracyBudget fine-tunes the "
     r"sparsity it chose with the mask frozen", "run"),
    ("validation_examples_without_budget", ["--config.validation_examples=8"], {},
     r"error: config\.validation_examples holds out training examples for an "
     r"accuracy budget, and config\.accuracy_budget is None\. Received: "
     r"validation_examples=8", "run"),
    ("validation_examples_all", ["--config.target_sparsity=None",
                                 "--config.accuracy_budget=0.01",
                                 "--config.validation_examples=64"], {},
     r"error: config\.validation_examples=64: the accuracy budget needs held-out "
     r"examples and training examples, and the training split has 64; hold out "
     r"between 1 and 63", "run"),
    ("unknown_allocation", ["--config.allocation=uniform"], {},
     r"error: config\.allocation='uniform': .*expected one of \('auto', 'magnitude', "
     r"'learned', 'erk'\)\. Received: allocation='uniform'", "run"),
    ("unknown_switched_layers", ["--config.switched_layers=conv"], {},
     r"error: config\.switched_layers='conv': .*expected one of \('fc', 'all'\)\. "
     r"Received: switched_layers='conv'", "run"),
    ("unknown_switch_estimator", ["--config.switch_estimator=gumbel"], {},
     r"error: config\.switch_estimator='gumbel': .*expected one of \('sigmoid', "
     r"'identity'\)\. Received: switch_estimator='gumbel'", "run"),
    ("unknown_schedule_mode", ["--config.schedule.mode=sometimes"], {},
     r"error: config\.schedule\.mode='sometimes': .*expected one of "
     r"\('every_batch', 'alternate'\)", "run"),
    ("switch_every_zero", ["--config.schedule.switch_every=0"], {},
     r"error: config\.schedule\.switch_every=0: .*expected an integer >= 1", "run"),
    ("ramp_power_below_one", ["--config.schedule.ramp_power=0.5"], {},
     r"error: config\.schedule\.ramp_power=0\.5: .*expected a number >= 1\. "
     r"Received: .*0\.5", "run"),
    ("switcher_initial_logit", ["--config.switcher.initial_logit=-1.0"], {},
     r"error: config\.switcher\.initial_logit=-1\.0: .*expected a positive number",
     "run"),
    # The 3-epoch run freezes the mask after epoch 2: a 3-epoch ramp would
    # freeze it mid-ramp, short of the target.
    ("ramp_ends_after_the_freeze", ["--config.schedule.ramp_epochs=3"], {},
     r"error: config\.schedule\.ramp_epochs=3: The target ramp ends at step \d+ "
     r"\(warmup_steps=0 \+ ramp_steps=\d+\), after the mask freezes at "
     r"freeze_step=\d+: the frozen mask would have sparsity 0\.\d+ instead of 0\.9\. "
     r".*\(in epochs: warmup_epochs=0 \+ ramp_epochs=3 must be <= num_epochs - "
     r"freeze_epochs = 2\)", "run"),
    ("unknown_model", ["--config.model=alexnet"], {},
     r"error: config\.model must be one of \[.*'lenet300'.*\]\. "
     r"Received: 'alexnet'", "run"),
    ("unknown_dataset", ["--config.dataset=imagenet"], {},
     r"error: config\.dataset must be one of \[.*'cifar10'.*\]\. "
     r"Received: 'imagenet'", "run"),
    ("unknown_strategy", ["--strategy=tpu"], {},
     r"error: flag --strategy=tpu: value should be one of "
     r"<auto\|one_device\|mirrored\|multi_worker\|data_parallel>", "run"),
    ("jax_strategy_on_tensorflow", ["--strategy=data_parallel"], {"KERAS_BACKEND": "tensorflow"},
     r"error: --strategy=data_parallel does not run on the tensorflow backend", "run"),
    ("tf_config_not_json", MULTI_WORKER, {"TF_CONFIG": '{"cluster": '},
     r"error: TF_CONFIG is not valid JSON \(.*\); --strategy=multi_worker expects "
     r"JSON like .*Received: TF_CONFIG=\{\"cluster\": ", "run"),
    ("tf_config_no_cluster", MULTI_WORKER,
     {"TF_CONFIG": json.dumps({"task": {"type": "worker", "index": 0}})},
     r'error: TF_CONFIG has no "cluster"; --strategy=multi_worker expects JSON .*'
     r'Received: TF_CONFIG=\{"task": ', "run"),
    ("tf_config_no_task", MULTI_WORKER,
     {"TF_CONFIG": json.dumps({"cluster": TWO_WORKERS})},
     r'error: TF_CONFIG has no "task"; --strategy=multi_worker expects JSON', "run"),
    ("tf_config_index_out_of_range", MULTI_WORKER,
     {"TF_CONFIG": json.dumps(
         {"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 2}})},
     r'error: TF_CONFIG "task"\."index"=2 is out of range for the 2 "worker" '
     r'address\(es\) of "cluster"', "run"),
    ("tf_config_job_not_in_cluster", MULTI_WORKER,
     {"TF_CONFIG": json.dumps(
         {"cluster": TWO_WORKERS, "task": {"type": "chief", "index": 0}})},
     r'error: TF_CONFIG "task"\."type"=\'chief\' is not a job of "cluster" '
     r"\['worker'\]; --strategy=multi_worker expects JSON", "run"),
    ("workdir_is_a_file", [], {},
     r"error: --workdir=.*/run is an existing file; expected a directory", "file"),
    ("workdir_below_a_file", [], {},
     r"error: --workdir=.*/blocker/run cannot be created: .*/blocker is a file, "
     r"not a directory", "under_file"),
    ("workdir_not_writable", [], {},
     r"error: --workdir=.*/run is not writable: the workdir .*/run does not "
     r"allow this user \(uid \d+\) to create files", "read_only"),
    ("data_dir_missing", ["--config.data_dir={scratch}/no_such_dir"], {},
     r"error: data_dir='.*/no_such_dir' does not exist: expected a directory of "
     r"fashion_mnist's MNIST-format IDX files", "run"),
    ("idx_wrong_magic", ["--config.data_dir={bad_magic}"], {},
     r"error: .*/train-images-idx3-ubyte is not an IDX file: expected the magic "
     r"bytes 00 00 <type> <ndim>\. Received: 1f 8b 08 00", "run"),
    ("idx_truncated", ["--config.data_dir={truncated}"], {},
     r"error: .*/train-images-idx3-ubyte: IDX header says shape \(8, 28, 28\) "
     r"\(6288 bytes in all\), but the file has 6188 bytes", "run"),
    ("idx_count_mismatch", ["--config.data_dir={count_mismatch}"], {},
     r"error: .* \(train\): expected images \(n, rows, cols\) and n labels\. "
     r"Received: images \(8, 28, 28\), labels \(7,\)", "run"),
    ("data_file_missing", ["--config.data_dir={missing_file}"], {},
     r"error: Missing t10k-labels-idx1-ubyte\[\.gz\] in .*/missing_file\.", "run"),
    ("cifar_pickle_garbage",
     ["--config.dataset=cifar10", "--config.data_dir={cifar_garbage}"], {},
     r"error: Cannot unpickle CIFAR-10 file .*/data_batch_1: UnpicklingError: "
     r"invalid load key, '\\x00'\. Expected the official python-pickle batch",
     "run"),
    ("cifar_pickle_missing_key",
     ["--config.dataset=cifar10", "--config.data_dir={cifar}"], {},
     r"error: .*/data_batch_1: missing key b'labels', expected a dict with "
     r"b'data' and b'labels'\. Received keys: \[b'data'\]", "run"),
    ("init_from_missing", ["--init_from={scratch}/no_such_model.keras"], {},
     r"error: --init_from=.*/no_such_model\.keras does not exist; expected a "
     r"\.keras model file", "run"),
    ("init_from_not_keras", ["--init_from={h5_model}"], {},
     r"error: --init_from=.*/model\.h5 does not end in \.keras; expected a model "
     r"saved by keras\.Model\.save", "run"),
    ("init_from_corrupt", ["--init_from={corrupt_keras}"], {},
     r"error: --init_from=.*/corrupt\.keras is not a \.keras file: it is not a "
     r"zip archive", "run"),
    ("init_from_unknown_class", ["--init_from={unknown_class_keras}"], {},
     r"error: Cannot load --init_from=.*/unknown_class\.keras: unknown class "
     r"'NoSuchLayer', neither built into Keras nor registered with "
     r"keras\.saving\.register_keras_serializable\. Expected a \.keras file "
     r"written by keras\.Model\.save", "run"),
    ("init_from_lambda", ["--init_from={lambda_keras}"], {},
     r"error: Cannot load --init_from=.*/lambda\.keras: ValueError: Requested the "
     r"deserialization of a `Lambda` layer .*safe_mode", "run"),
    ("init_from_no_matching_layer", ["--init_from={other_keras}"], {},
     r"error: --init_from=.*/other\.keras does not fit the model: No layer of the "
     r"source model .* matches a layer of the target model 'lenet_300_100' by "
     r"name\. Layers with weights in the source: \['head'\]; in the target: "
     r"\['fc1', 'fc2', 'fc3'\]", "run"),
    ("model_file_missing", ["--config.model={scratch}/no_such_model.keras"], {},
     r"error: config\.model=.*/no_such_model\.keras does not exist; expected a "
     r"\.keras model file", "run"),
    ("model_file_unknown_class", ["--config.model={unknown_class_keras}"], {},
     r"error: Cannot load config\.model=.*/unknown_class\.keras: unknown class "
     r"'NoSuchLayer'", "run"),
    ("model_file_other_input", ["--config.model={images_keras}"], {},
     r"error: config\.model=.*/images\.keras takes inputs of shape "
     r"\(None, 32, 32, 3\); config\.dataset='fashion_mnist' gives \(None, 28, 28\)",
     "run"),
    ("model_file_nothing_to_switch", ["--config.model={conv_only_keras}"], {},
     r"error: config\.model=.*/conv_only\.keras cannot be switched with "
     r"config\.switched_layers='fc': switch_model: layers=None \(every "
     r"keras\.layers\.Dense\) selects no layer", "run"),
    ("init_from_other_shape", ["--init_from={narrow_keras}"], {},
     r"error: --init_from=.*/narrow\.keras does not fit the model: Layer 'fc1' "
     r"kernel has shape \(784, 50\) in the source model but \(784, 300\) in the "
     r"target model", "run"),
    # The workdir holds a run of the base config, with seed 0.
    ("workdir_of_another_config", ["--config.seed=7"], {},
     r"error: --workdir=.*/run holds a run with a different config \(keys "
     r"\['seed'\]\)\. .*Received: config\.seed=7 \(its config\.json: 0\)", "run"),
)
WORKERS = 4  # subprocesses at a time: most of each one's time is spent importing


def snapshot(path):
    """{relative path: (type, mode, mtime_ns, sha256 of a file)} of `path`
    and everything under it, directories included."""
    out = {}
    paths = [path]
    if os.path.isdir(path):
        for parent, dirs, files in os.walk(path):
            paths += [os.path.join(parent, name) for name in dirs + files]
    for item in paths:
        info = os.lstat(item)
        digest = None
        if stat.S_ISREG(info.st_mode):
            with open(item, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        out[os.path.relpath(item, path)] = (
            stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_mtime_ns, digest
        )
    return out


def _rewrite_config(source, path, edit):
    """Copies the .keras zip `source` to `path` with config.json edited."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _unknown_class(config):
    layer = next(l for l in config["config"]["layers"] if l["name"] == "fc1")
    layer.update(class_name="NoSuchLayer", module="not_a_module",
                 registered_name="not_a_package>NoSuchLayer")


def _fixtures(scratch):
    """Data directories and .keras files the rows name, under `scratch`."""
    paths = {"scratch": scratch}

    def directory(name):
        path = os.path.join(scratch, name)
        os.makedirs(path)
        return path

    paths["mnist"] = directory("mnist")
    write_split(paths["mnist"], n_train=64, n_test=16)
    for name in ("bad_magic", "truncated", "count_mismatch"):
        paths[name] = directory(name)
        write_split(paths[name], n_train=8, n_test=4, compress=False)
    with open(os.path.join(paths["bad_magic"], "train-images-idx3-ubyte"), "r+b") as f:
        f.write(b"\x1f\x8b\x08\x00")  # gzip's magic where IDX has 00 00 08 03
    images = os.path.join(paths["truncated"], "train-images-idx3-ubyte")
    with open(images, "r+b") as f:
        f.truncate(os.path.getsize(images) - 100)
    write_idx(os.path.join(paths["count_mismatch"], "train-labels-idx1-ubyte"),
               np.zeros(7, "uint8"), compress=False)
    paths["missing_file"] = directory("missing_file")
    write_split(paths["missing_file"], n_train=8, n_test=4, compress=False)
    os.remove(os.path.join(paths["missing_file"], "t10k-labels-idx1-ubyte"))
    folder, _ = write_cifar(directory("cifar"), 10, n_train=2, n_test=2)
    write_pickle(os.path.join(folder, "data_batch_1"),
                  {b"data": np.zeros((2, 3072), "uint8")})
    paths["cifar"] = os.path.dirname(folder)
    folder, _ = write_cifar(directory("cifar_garbage"), 10, n_train=2, n_test=2)
    with open(os.path.join(folder, "data_batch_1"), "wb") as f:
        f.write(b"\x00 not a pickle")
    paths["cifar_garbage"] = os.path.dirname(folder)

    paths["broken_config"] = os.path.join(scratch, "broken_config.py")
    with open(paths["broken_config"], "w") as f:
        f.write("def get_config(:\n    pass\n")
    paths["h5_model"] = os.path.join(scratch, "model.h5")
    with open(paths["h5_model"], "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n")  # HDF5's signature: an existing file

    paths["corrupt_keras"] = os.path.join(scratch, "corrupt.keras")
    with open(paths["corrupt_keras"], "wb") as f:
        f.write(np.random.RandomState(0).bytes(4096))
    dense = save_dense_lenet300(os.path.join(scratch, "dense.keras"))
    paths["unknown_class_keras"] = _rewrite_config(
        dense, os.path.join(scratch, "unknown_class.keras"), _unknown_class
    )
    paths["narrow_keras"] = save_dense_lenet300(
        os.path.join(scratch, "narrow.keras"), fc1_units=50)
    inputs = keras.Input((28, 28))
    outputs = keras.layers.Dense(10, name="head")(keras.layers.Flatten()(inputs))
    paths["other_keras"] = os.path.join(scratch, "other.keras")
    keras.Model(inputs, outputs).save(paths["other_keras"])
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
    paths["images_keras"] = os.path.join(scratch, "images.keras")
    keras.Model(inputs, outputs).save(paths["images_keras"])
    inputs = keras.Input((28, 28))
    x = keras.layers.Conv1D(10, 28)(inputs)
    paths["conv_only_keras"] = os.path.join(scratch, "conv_only.keras")
    keras.Model(inputs, keras.layers.Flatten()(x)).save(paths["conv_only_keras"])
    inputs = keras.Input((28, 28))
    doubled = keras.layers.Lambda(lambda x: x * 2.0, name="fc1")(inputs)
    paths["lambda_keras"] = os.path.join(scratch, "lambda.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras may warn about lambdas
        keras.Model(inputs, doubled).save(paths["lambda_keras"])
    return paths


def _previous_run(workdir, config_json):
    """The files a previous run of the base config left in `workdir`."""
    os.makedirs(os.path.join(workdir, "checkpoints"))
    files = {
        "config.json": config_json,
        "checkpoints/latest.weights.h5": "not really HDF5, but left alone",
        "checkpoints/state.json": '{"epochs_done": 1, "train_seconds": 2.5}\n',
        "report.json": "{}\n",
    }
    for name, text in files.items():
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    # Old timestamps, so that any rewrite shows even within one clock tick.
    for parent, dirs, names in os.walk(workdir, topdown=False):
        for name in names + dirs:
            os.utime(os.path.join(parent, name), ns=(10**18, 10**18))
    os.utime(workdir, ns=(10**18, 10**18))


def _drop_root_override():
    """The command prefix that makes permission bits bind this process (as
    root: drop CAP_DAC_OVERRIDE), or (None, reason) when that is impossible."""
    if os.geteuid() != 0:
        return [], None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None, "running as root, and setpriv (util-linux) is missing"
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run(prefix + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"running as root, and setpriv cannot drop CAP_DAC_OVERRIDE: {probe.stderr}"
    return prefix, None


def _run_row(row, paths, config_json, prefix):
    name, extra, env_extra, _, kind = row
    rowdir = tempfile.mkdtemp(prefix=name + "-", dir=paths["scratch"])
    workdir = os.path.join(rowdir, "run")
    watched = workdir
    if kind == "file":
        with open(workdir, "w") as f:
            f.write("a file, not a directory")
    elif kind == "under_file":
        watched = os.path.join(rowdir, "blocker")
        with open(watched, "w") as f:
            f.write("a file where a directory should be")
        workdir = os.path.join(watched, "run")
    else:
        _previous_run(workdir, config_json)
        if kind == "read_only":
            os.chmod(workdir, 0o500)
            os.utime(workdir, ns=(10**18, 10**18))
    before = snapshot(watched)
    args = [arg.format(**paths) for arg in BASE_ARGS + tuple(extra)]
    command = [sys.executable, "-m", "trainers.train", f"--workdir={workdir}", *args]
    if kind == "read_only":
        command = prefix + command
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(env_extra)
    started = time.time()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    return {
        "returncode": result.returncode, "stderr": result.stderr,
        "seconds": time.time() - started, "before": before,
        "after": snapshot(watched), "watched": watched,
    }


class BadInputTest(TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        scratch = tempfile.mkdtemp(prefix="bad_input_")
        cls.addClassCleanup(_remove, scratch)
        paths = _fixtures(scratch)
        config_json = small_config(paths["mnist"]).to_json()
        prefix, cls.skip_read_only = _drop_root_override()
        rows = [row for row in ROWS if not (row[4] == "read_only" and prefix is None)]
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            futures = {row[0]: pool.submit(_run_row, row, paths, config_json, prefix)
                       for row in rows}
            cls.results = {name: future.result() for name, future in futures.items()}
        cls.seconds = time.time() - started
        if os.environ.get("BAD_INPUT_TIMES"):
            for name, result in cls.results.items():
                print(f"{name}: {result['seconds']:.1f} s", file=sys.stderr)
            print(f"all rows: {cls.seconds:.1f} s", file=sys.stderr)

    @parameterized.named_parameters(*[(row[0], row[0], row[3]) for row in ROWS])
    def test_exits_2_with_a_clear_message_and_writes_nothing(self, name, pattern):
        if name not in self.results:
            self.skipTest(
                f"{self.skip_read_only}: a mode 0o500 directory is writable "
                "for this process, so it is no bad input here (workdir_below_a_file "
                "covers a workdir that cannot be created, root or not)"
            )
        result = self.results[name]
        self.assertEqual(result["returncode"], 2, result["stderr"])
        self.assertRegex(result["stderr"], pattern)
        self.assertNotIn("Traceback", result["stderr"])
        self.assertEqual(result["after"], result["before"], result["watched"])


def _remove(path):
    for parent, dirs, _ in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o700)
    shutil.rmtree(path)


if __name__ == "__main__":
    tf.test.main()
