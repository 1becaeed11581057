"""Distribution for the trainer: the strategy (tf.distribute's on the
TensorFlow backend, keras.distribution's on JAX), which process writes the
run's files, and what happens when a worker of a multi-worker run is lost.

Multi-worker: every worker runs every step (the collectives need them all),
but only the chief writes into the workdir; the others write into a scratch
directory that is removed at the end.
"""

import contextlib
import hashlib
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

# What a collective raises on the survivors when a peer dies: gRPC's
# UNAVAILABLE once the connection drops (at once for a killed process), or
# the coordination service's heartbeat abort for a host that vanishes.
PEER_ERRORS = (
    tf.errors.UnavailableError, tf.errors.AbortedError,
    tf.errors.CancelledError, tf.errors.DeadlineExceededError,
)


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker run died or became unreachable."""


class KerasDistribution:
    """--strategy on the JAX and PyTorch backends, in the shape the trainer
    uses a tf.distribute strategy (`scope()`, `num_replicas_in_sync`): one
    device, or (JAX only) `keras.distribution.DataParallel` over `devices`,
    set for the whole process (Keras' JAX fit() shards each batch over it)."""

    def __init__(self, devices=None):
        self.devices = devices
        self.num_replicas_in_sync = len(devices) if devices else 1
        if devices:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices))

    def scope(self):
        return contextlib.nullcontext()


def make_strategy(name):
    """The strategy named by --strategy (see trainers.preflight.STRATEGIES).
    On TensorFlow, tf.distribute's: auto: mirrored over the GPUs if any, else
    one device; mirrored without GPUs: over every logical CPU device (see
    --cpu_devices). Call it before anything initialises TensorFlow's devices:
    MultiWorkerMirroredStrategy must configure the collective ops first. On
    JAX, a `KerasDistribution`: data_parallel over every device, auto over
    the accelerators when there are several, else one device. On PyTorch,
    one device (Keras' torch fit() places it)."""
    if keras.backend.backend() == "torch":
        return KerasDistribution()
    if keras.backend.backend() == "jax":
        import jax

        devices = jax.devices()
        if name == "data_parallel" or (name == "auto" and len(devices) > 1
                                       and devices[0].platform != "cpu"):
            return KerasDistribution(devices)
        return KerasDistribution()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device" or (name == "auto" and not gpus):
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name in ("mirrored", "auto"):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(distribution):
    resolver = getattr(distribution, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def is_chief(distribution):
    """Whether this process writes the run's files: always, except for the
    non-chief workers of a multi-worker run (the chief is task "chief", or
    "worker" 0 when the cluster names no chief)."""
    if not is_multi_worker(distribution):
        return True
    resolver = distribution.cluster_resolver
    if resolver.task_type == "chief":
        return True
    names_a_chief = "chief" in resolver.cluster_spec().as_dict()
    return not names_a_chief and resolver.task_type == "worker" and resolver.task_id == 0


@contextlib.contextmanager
def output_directory(distribution, workdir):
    """Yields where this process writes the run's files: `workdir` for the
    chief; for another worker, a scratch directory removed on exit.

    The scratch directory has one fixed name per (workdir, task) under the
    system temp dir and is emptied first, so a worker that was killed (and
    could not remove it) leaves nothing behind once restarted.
    """
    if is_chief(distribution):
        yield workdir
        return
    resolver = distribution.cluster_resolver
    key = hashlib.sha256(os.path.abspath(workdir).encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(),
                        f"ks-worker-{resolver.task_type}{resolver.task_id}-{key}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def stop_on_lost_worker(distribution, checkpoints):
    """Turns the error a collective raises when a peer of a multi-worker run
    dies into `WorkerLost`, with `worker_lost_message`'s one line."""
    try:
        yield
    except PEER_ERRORS as error:
        if not is_multi_worker(distribution):
            raise
        raise WorkerLost(worker_lost_message(error, checkpoints, distribution)) from error


def worker_lost_message(error, checkpoints, distribution):
    """One line: which peer, what TensorFlow said, what is kept, what to do."""
    text = getattr(error, "message", None) or str(error)
    resolver = distribution.cluster_resolver
    me = (resolver.task_type, str(resolver.task_id))
    # The peer named in the error, if there is exactly one besides this task.
    peers = {task for task in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", text)
             if task != me}
    peer = " ".join(peers.pop()) if len(peers) == 1 else "another worker"
    cause = re.search(r'grpc_message:"([^"]+)"', text)
    if cause is None:
        cause = re.search(r"aborted by: ?([^\n]+)", text)
    reason = cause.group(1) if cause else text.strip().splitlines()[0]
    reason = reason.strip().rstrip(":").strip()
    try:
        state = checkpoints.read_state()
    except (OSError, ValueError):
        state = None
    if state is None:
        kept = "no checkpoint had been written yet, a restart starts afresh"
    else:
        kept = (f"the last complete checkpoint in {checkpoints.directory} "
                f"(epoch {state['epochs_done']}) is kept")
    return (
        f"lost contact with {peer} of the multi-worker run "
        f"({type(error).__name__}: {reason}); stopped, {kept}. Restart every "
        "worker with the same command and TF_CONFIG to resume."
    )


def weights_fingerprint(model):
    """sha256 (16 hex digits) of every model weight (task network, switcher,
    masks, step counter): equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()[:16]
