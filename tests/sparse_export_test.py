"""export_sparse, export_tflite, SparseDense and its compact storage."""

import gzip
import json
import os
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

import keras_switch
from keras_switch import SwitchedDense
from keras_switch import Switcher
from keras_switch import export
from keras_switch import models
from keras_switch.layers import switched_layers
from keras_switch.sparse import HYBRID_MIN_BATCH
from keras_switch.sparse import REPRESENTATIONS
from keras_switch.sparse import SparseDense
from keras_switch.sparse import batch_plan
from keras_switch.sparse import encode_kernel
from tests.helpers import SubclassedNet
from tests.test_case import TestCase
from tests.test_case import modern_model

INPUT_DIM = 24
# (activation, use_bias, sparsity) of each branch of `_branches_model`.
BRANCHES = (
    ("relu", True, 0.9),
    (None, True, 0.9),
    ("softmax", True, 0.9),
    ("tanh", False, 0.9),
    ("relu", True, 0.0),
    ("sigmoid", True, 1.0),
)


def exact_mask(shape, sparsity, rng):
    """A 0/1 mask with exactly round(sparsity * size) zeros."""
    size = int(np.prod(shape))
    mask = np.ones(size, "float32")
    mask[rng.permutation(size)[: round(sparsity * size)]] = 0.0
    return mask.reshape(shape)


def mask_all(model, sparsities, seed=0):
    """Freezes each switched layer's mask at the given exact sparsity."""
    rng = np.random.RandomState(seed)
    for layer, sparsity in zip(switched_layers(model), sparsities, strict=True):
        layer.freeze_mask(exact_mask(tuple(layer.kernel.shape), sparsity, rng))


def _branches_model():
    """One switched layer per BRANCHES entry, side by side on one input."""
    switcher = Switcher()
    inputs = keras.Input((INPUT_DIM,), name="features")
    outputs = [
        SwitchedDense(
            8, activation=activation, use_bias=use_bias, switcher=switcher,
            bias_initializer="random_normal", name=f"branch{i}",
        )(inputs)
        for i, (activation, use_bias, _) in enumerate(BRANCHES)
    ]
    model = keras_switch.SwitchingModel(inputs, outputs)
    mask_all(model, [sparsity for _, _, sparsity in BRANCHES])
    return model


def run_tflite(path, x):
    """The output of the TFLite model at `path` on `x`."""
    with warnings.catch_warnings():
        # TF 2.21 still ships it, with a warning naming ai_edge_litert.
        warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=path)
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(given["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(given["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(taken["index"])


def _load_and_serve(directory, x):
    loaded = tf.saved_model.load(directory)
    return [np.asarray(y) for y in tf.nest.flatten(loaded.serve(tf.constant(x)))]


# Runs in a fresh interpreter where importing keras_switch fails.
FRESH_PROCESS = """
import sys
sys.modules["keras_switch"] = None
import numpy as np
import tensorflow as tf
x = np.load(sys.argv[1])
results = {}
for i, directory in enumerate(sys.argv[3:]):
    outputs = tf.nest.flatten(tf.saved_model.load(directory).serve(tf.constant(x)))
    for j, y in enumerate(outputs):
        results[f"{i}_{j}"] = np.asarray(y)
np.savez(sys.argv[2], **results)
"""


class EncodingTest(TestCase):
    def test_uint8_gaps_with_a_filler(self):
        kernel = np.zeros((400, 2), "float32")
        kernel[:50, 0] = np.arange(1, 51)  # 50 gaps of 1 in the transposed kernel
        kernel[40, 1] = 7.0  # one gap of 400 - 50 + 40 + 1 = 391 > 255
        storage, codes, values = encode_kernel(kernel)
        self.assertEqual(storage, "delta")
        self.assertEqual(codes.dtype, np.uint8)
        self.assertLen(codes, 51 + 1)  # one filler bridges the long gap
        self.assertEqual(np.count_nonzero(values), 51)
        layer = SparseDense.from_kernel(kernel)
        self.assertEqual(layer.nonzeros, 51)
        self.assertAllEqual(layer.dense_kernel(), kernel)

    def test_uint16_when_fillers_would_cost_more(self):
        kernel = np.zeros((300, 300), "float32")
        kernel[::7, ::11] = 1.5  # gaps of 7 * 300 in the transposed kernel
        storage, codes, _ = encode_kernel(kernel)
        self.assertEqual((storage, codes.dtype), ("delta", np.uint16))
        self.assertAllEqual(SparseDense.from_kernel(kernel).dense_kernel(), kernel)

    def test_dense_storage_when_codes_save_nothing(self):
        kernel = np.random.RandomState(0).normal(size=(6, 5)).astype("float32")
        storage, codes, values = encode_kernel(kernel)
        self.assertEqual(storage, "dense")
        self.assertIsNone(codes)
        self.assertAllEqual(values, kernel)

    def test_empty_kernel(self):
        storage, codes, values = encode_kernel(np.zeros((4, 3), "float32"))
        self.assertEqual((storage, codes.size, values.size), ("delta", 0, 0))


class SparseDenseTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(1)
        self.kernel = rng.normal(size=(INPUT_DIM, 6)).astype("float32")
        self.kernel *= exact_mask(self.kernel.shape, 0.8, rng)
        self.bias = rng.normal(size=(6,)).astype("float32")
        self.x = rng.normal(size=(2, 3, INPUT_DIM)).astype("float32")

    def test_every_representation_on_3d_inputs(self):
        want = np.tanh(np.einsum("bti,io->bto", self.x, self.kernel) + self.bias)
        for representation in REPRESENTATIONS:
            with self.subTest(representation):
                layer = SparseDense.from_kernel(
                    self.kernel, self.bias, representation, activation="tanh"
                )
                got = tf.function(layer)(tf.constant(self.x))
                self.assertAllClose(got, want, atol=1e-5)

    def test_dense_products_do_not_take_the_kernel_as_a_constant(self):
        # oneDNN's constant-weight path is slow at small batches (see
        # `keras_switch.sparse.codec.kernel_tensor`): the kernel of every
        # dense product comes out of a PlaceholderWithDefault, for both
        # storages, and in "hybrid" (whose MatMul sits in a branch function)
        # as well.
        dense_kernel = self.kernel + 1.0  # no zeros: stored "dense"
        for kernel, representation in (
            (self.kernel, "dense"),
            (dense_kernel, "dense"),
            (self.kernel, "hybrid"),
        ):
            layer = SparseDense.from_kernel(kernel, self.bias, representation)
            graph = (
                tf.function(layer)
                .get_concrete_function(tf.TensorSpec([None, INPUT_DIM]))
                .graph
            )
            ops = graph.get_operations()
            with self.subTest(storage=layer.storage, representation=representation):
                fed = [
                    op for op in ops
                    if op.type == "PlaceholderWithDefault"
                    and op.outputs[0].shape == (INPUT_DIM, 6)
                ]
                self.assertLen(fed, 1)
                consumers = {op.type for op in fed[0].outputs[0].consumers()}
                self.assertIn("MatMul" if representation == "dense" else "StatelessIf", consumers)

    def test_batch_plan_runs_each_product_on_its_batch_sizes(self):
        x = np.random.RandomState(4).normal(size=(9, INPUT_DIM)).astype("float32")
        want = np.tanh(x @ self.kernel + self.bias)
        layer = SparseDense.from_kernel(
            self.kernel, self.bias, "sparse_matmul@1,gather@2,csr@4,dense@8",
            activation="tanh",
        )
        serve = tf.function(layer, input_signature=[tf.TensorSpec([None, INPUT_DIM])])
        for rows in (1, 2, 3, 4, 7, 8, 9):
            with self.subTest(rows=rows):
                self.assertAllClose(serve(x[:rows]), want[:rows], atol=1e-5)
        # Each product sits in its own branch of the nested conds.
        graph = serve.get_concrete_function().graph
        branches = {
            node.op
            for function in graph.as_graph_def().library.function
            for node in function.node_def
        }
        for op in ("SparseTensorDenseMatMul", "SegmentSum", "SparseMatrixMatMul", "MatMul"):
            self.assertIn(op, branches)

    def test_batch_plan_parsing(self):
        self.assertEqual(batch_plan("hybrid"), ((1, "dense"), (HYBRID_MIN_BATCH, "csr")))
        self.assertEqual(batch_plan("gather"), ((1, "gather"),))
        self.assertEqual(
            batch_plan("sparse_matmul@1,dense@2,csr@256"),
            ((1, "sparse_matmul"), (2, "dense"), (256, "csr")),
        )
        for bad in ("dense@2", "dense@1,csr@1", "dense@1,csr@0", "bogus@1", "dense@x",
                    "dense@1,", "", "hybrid@1", None):
            with self.subTest(bad=bad):
                with self.assertRaisesRegex(ValueError, "batch plan.*representation="):
                    batch_plan(bad)

    def test_layer_test(self):
        storage, codes, values = encode_kernel(self.kernel)
        for representation in ("dense", "csr", "sparse_matmul@1,dense@2"):
            kwargs = dict(units=6, input_dim=INPUT_DIM, storage=storage, codes=codes,
                          values=values, bias=self.bias, representation=representation,
                          activation="relu")
            self.run_layer_test(
                SparseDense, kwargs, input_shape=(3, INPUT_DIM),
                expected_output_shape=(3, 6), expected_num_trainable_weights=0,
                supports_training=False,
            )

    def test_config_round_trip(self):
        layer = SparseDense.from_kernel(self.kernel, self.bias, "gather", name="s")
        config = json.loads(json.dumps(layer.get_config()))
        revived = SparseDense.from_config(config)
        self.assertEqual(revived.get_config(), layer.get_config())
        self.assertAllEqual(revived.dense_kernel(), self.kernel)
        revived = keras.saving.deserialize_keras_object(
            json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
        )
        self.assertAllClose(revived(self.x), layer(self.x), atol=1e-6)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "representation=.bogus."):
            SparseDense.from_kernel(self.kernel, representation="bogus")
        with self.assertRaisesRegex(ValueError, r"bias of shape \(6,\)"):
            SparseDense.from_kernel(self.kernel, bias=np.zeros(5, "float32"))


class ExportSparseTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        directory = tempfile.TemporaryDirectory()
        cls.addClassCleanup(directory.cleanup)
        cls.tmp = directory.name
        cls.model = _branches_model()
        cls.stripped = keras_switch.strip_switches(cls.model)
        rng = np.random.RandomState(2)
        # More rows than HYBRID_MIN_BATCH: "hybrid" runs its CSR branch.
        cls.x = rng.normal(size=(HYBRID_MIN_BATCH + 4, INPUT_DIM)).astype("float32")
        cls.want = [np.asarray(y) for y in cls.stripped(cls.x)]
        cls.exports = {}
        for representation in ("auto",) + REPRESENTATIONS:
            path = os.path.join(cls.tmp, representation)
            cls.exports[representation] = keras_switch.export_sparse(
                cls.model, path, representation=representation
            )

    def test_every_representation_equals_the_stripped_model(self):
        for representation, result in self.exports.items():
            for rows in (HYBRID_MIN_BATCH + 4, 3, 1):
                with self.subTest(representation=representation, batch=rows):
                    got = _load_and_serve(result["directory"], self.x[:rows])
                    self.assertLen(got, len(BRANCHES))
                    for y, want in zip(got, self.want):
                        self.assertAllClose(y, want[:rows], atol=1e-5)

    def test_all_zero_layer_gives_activation_of_bias(self):
        got = _load_and_serve(self.exports["csr"]["directory"], self.x[:3])[-1]
        bias = self.model.get_layer(f"branch{len(BRANCHES) - 1}").bias.numpy()
        self.assertAllClose(got, np.tile(1 / (1 + np.exp(-bias)), (3, 1)), atol=1e-6)

    def test_fresh_process_without_keras_switch(self):
        inputs = os.path.join(self.tmp, "x.npy")
        outputs = os.path.join(self.tmp, "fresh.npz")
        np.save(inputs, self.x)
        names = list(self.exports)
        result = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, inputs, outputs]
            + [self.exports[name]["directory"] for name in names],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            capture_output=True, text=True, timeout=240,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        with np.load(outputs) as fresh:
            for i, name in enumerate(names):
                for j, want in enumerate(self.want):
                    self.assertAllClose(fresh[f"{i}_{j}"], want, atol=1e-5, msg=name)

    def test_returned_layers(self):
        result = self.exports["auto"]
        self.assertEqual(result["directory"], os.path.join(self.tmp, "auto"))
        rows = result["layers"]
        self.assertEqual([r["name"] for r in rows], [f"branch{i}" for i in range(len(BRANCHES))])
        for row, (_, _, sparsity) in zip(rows, BRANCHES):
            self.assertEqual(row["shape"], [INPUT_DIM, 8])
            self.assertEqual(row["nonzeros"], INPUT_DIM * 8 - round(sparsity * INPUT_DIM * 8))
            self.assertAlmostEqual(row["density"], row["nonzeros"] / (INPUT_DIM * 8))
            # Small kernels: the dense product is the fastest.
            self.assertEqual(row["representation"], "dense")
        for name in REPRESENTATIONS:
            self.assertEqual({r["representation"] for r in self.exports[name]["layers"]}, {name})

    def test_auto_and_size_of_a_784x300_layer(self):
        switcher = Switcher()
        inputs = keras.Input((784,))
        model = keras_switch.SwitchingModel(
            inputs, SwitchedDense(300, activation="relu", switcher=switcher)(inputs)
        )
        model(np.zeros((1, 784), "float32"))
        dense = keras_switch.export_sparse(model, os.path.join(self.tmp, "d784"))
        mask_all(model, [0.95])
        sparse = keras_switch.export_sparse(model, os.path.join(self.tmp, "s784"))
        self.assertEqual(dense["layers"][0]["representation"], "dense")
        self.assertEqual(sparse["layers"][0]["representation"], "hybrid")
        ratio = export.gzip_size(sparse["directory"]) / export.gzip_size(dense["directory"])
        self.assertLessEqual(ratio, 0.08)
        x = np.random.RandomState(3).normal(size=(HYBRID_MIN_BATCH + 4, 784)).astype("float32")
        want = keras_switch.strip_switches(model)(x)
        self.assertAllClose(_load_and_serve(sparse["directory"], x)[0], want, atol=1e-5)

    def test_bad_representation(self):
        with self.assertRaisesRegex(
            ValueError, r"one of \('auto', 'dense', 'sparse_matmul'.*representation='bogus'"
        ):
            keras_switch.export_sparse(self.model, self.tmp, representation="bogus")
        with self.assertRaisesRegex(ValueError, r"\('auto', 'dense'"):
            keras_switch.export_sparse(self.model, self.tmp, representation=None)

    def test_subclassed_and_unbuilt_models_raise(self):
        model = SubclassedNet()
        model(np.ones((1, 64), "float32"))
        with self.assertRaisesRegex(ValueError, "export_sparse.*freeze_switches"):
            keras_switch.export_sparse(model, self.tmp)
        unbuilt = keras.Sequential([SwitchedDense(3, switcher=Switcher())])
        with self.assertRaisesRegex(ValueError, "not built"):
            keras_switch.export_sparse(unbuilt, self.tmp)

    def test_lenet5_round_trip(self):
        model = models.lenet_5(switcher=Switcher())
        model(np.zeros((1, 28, 28), "float32"))
        mask_all(model, [0.95, 0.9, 0.5])
        result = keras_switch.export_sparse(model, os.path.join(self.tmp, "lenet5"))
        self.assertEqual([r["name"] for r in result["layers"]], ["fc1", "fc2", "fc3"])
        x = np.random.RandomState(4).uniform(size=(5, 28, 28)).astype("float32")
        want = keras_switch.strip_switches(model)(x)
        self.assertAllClose(_load_and_serve(result["directory"], x)[0], want, atol=1e-5)

    def test_nested_sequential_with_plain_dense_layers(self):
        switcher = Switcher()
        body = keras.Sequential([
            keras.Input((INPUT_DIM,)),
            SwitchedDense(8, activation="relu", switcher=switcher, name="inner"),
            SwitchedDense(8, name="unswitched"),  # no switcher: stays a Dense
            keras.layers.Dropout(0.5),
        ])
        inputs = keras.Input((INPUT_DIM,))
        outputs = keras.layers.Dense(4, name="plain")(body(inputs))
        outputs = SwitchedDense(3, switcher=switcher, name="outer")(outputs)
        model = keras.Model(inputs, outputs)
        mask_all(model, [0.7, 0.5])
        result = keras_switch.export_sparse(model, os.path.join(self.tmp, "nested"), "gather")
        self.assertEqual([r["name"] for r in result["layers"]], ["inner", "outer"])
        want = keras_switch.strip_switches(model)(self.x)
        self.assertAllClose(_load_and_serve(result["directory"], self.x)[0], want, atol=1e-5)

    def test_sequential_model(self):
        model = keras.Sequential([
            keras.Input((INPUT_DIM,)),
            SwitchedDense(5, activation="softmax", switcher=Switcher(), name="only"),
        ])
        model.layers[0].freeze_mask(exact_mask((INPUT_DIM, 5), 0.6, np.random.RandomState(5)))
        result = keras_switch.export_sparse(
            model, os.path.join(self.tmp, "sequential"), "sparse_matmul"
        )
        self.assertEqual(result["layers"][0]["nonzeros"], 48)
        want = keras_switch.strip_switches(model)(self.x[:1])
        self.assertAllClose(_load_and_serve(result["directory"], self.x[:1])[0], want, atol=1e-5)


def _switched_cnn():
    """Conv (same, relu) -> strided conv without bias -> Flatten -> Dense,
    every layer switched, masks frozen at 90% / 95% / 90%."""
    switcher = Switcher()
    inputs = keras.Input((10, 10, 3))
    x = keras_switch.SwitchedConv2D(8, 3, padding="same", activation="relu",
                                    bias_initializer="random_normal", switcher=switcher,
                                    name="conv1")(inputs)
    x = keras_switch.SwitchedConv2D(16, (3, 2), strides=2, use_bias=False,
                                    switcher=switcher, name="conv2")(x)
    x = keras.layers.Flatten()(x)
    outputs = SwitchedDense(4, switcher=switcher, name="head")(x)
    model = keras_switch.SwitchingModel(inputs, outputs)
    mask_all(model, [0.9, 0.95, 0.9])
    return model


class ConvolutionExportTest(TestCase):
    def test_export_sparse_stores_convolutions_compactly(self):
        model = _switched_cnn()
        x = np.random.RandomState(3).normal(size=(5, 10, 10, 3)).astype("float32")
        want = keras_switch.strip_switches(model).predict(x, verbose=0)
        directory = self.create_tempdir().full_path
        result = keras_switch.export_sparse(model, os.path.join(directory, "sparse"))
        rows = {row["name"]: row for row in result["layers"]}
        self.assertEqual(rows["conv1"]["shape"], [3, 3, 3, 8])
        self.assertEqual(rows["conv1"]["nonzeros"], 216 - round(0.9 * 216))
        self.assertEqual(rows["conv2"]["representation"], "dense")
        (got,) = _load_and_serve(result["directory"], x)
        self.assertAllClose(got, want, atol=1e-5)
        # A fresh interpreter without keras_switch serves it too.
        np.save(os.path.join(directory, "x.npy"), x)
        run = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, os.path.join(directory, "x.npy"),
             os.path.join(directory, "out.npz"), result["directory"]],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            capture_output=True, text=True, timeout=240,
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        with np.load(os.path.join(directory, "out.npz")) as fresh:
            self.assertAllClose(fresh["0_0"], want, atol=1e-5)
        # Each convolution is stored compactly: the export of the sparse
        # model is smaller than the dense one's by about the density.
        dense = _switched_cnn()
        for layer in dense.switched_layers:
            layer.freeze_mask(np.ones(layer.kernel.shape, "float32"))
        dense_dir = keras_switch.export_sparse(dense, os.path.join(directory, "dense"))
        self.assertLess(export.gzip_size(result["directory"]),
                        export.gzip_size(dense_dir["directory"]))

    def test_sparse_conv2d_layer(self):
        rng = np.random.RandomState(0)
        kernel = exact_mask((3, 2, 4, 5), 0.8, rng) * rng.normal(size=(3, 2, 4, 5))
        kernel = kernel.astype("float32")
        bias = rng.normal(size=(5,)).astype("float32")
        layer = keras_switch.sparse.SparseConv2D.from_kernel(
            kernel, bias=bias, strides=(1, 2), padding="same", activation="relu")
        self.assertEqual(layer.storage, "delta")
        self.assertAllEqual(layer.dense_kernel(), kernel)
        x = rng.normal(size=(2, 7, 6, 4)).astype("float32")
        conv = keras.layers.Conv2D(5, (3, 2), strides=(1, 2), padding="same", activation="relu")
        conv(x)
        conv.set_weights([kernel, bias])
        self.assertAllClose(layer(x), conv(x), atol=1e-5)
        self.assertEqual(layer.compute_output_shape((None, 7, 6, 4)), (None, 7, 3, 5))
        revived = keras_switch.sparse.SparseConv2D.from_config(
            json.loads(json.dumps(layer.get_config())))
        self.assertAllClose(revived(x), conv(x), atol=1e-5)
        with self.assertRaisesRegex(ValueError, "representation` must be 'dense'"):
            keras_switch.sparse.SparseConv2D.from_kernel(kernel, representation="csr")
        with self.assertRaisesRegex(ValueError, "expects a kernel \\[kh, kw, c_in"):
            keras_switch.sparse.SparseConv2D.from_kernel(kernel[0, 0])

    def test_export_tflite_of_a_switched_cnn(self):
        model = _switched_cnn()
        x = np.random.RandomState(4).normal(size=(2, 10, 10, 3)).astype("float32")
        want = keras_switch.strip_switches(model)(x)
        path = os.path.join(self.create_tempdir().full_path, "cnn.tflite")
        keras_switch.export_tflite(model, path)
        self.assertAllClose(run_tflite(path, x), want, atol=1e-4)


class ModernLayersExportTest(TestCase):
    """Conv1D, DepthwiseConv2D, EinsumDense and MultiHeadAttention switched,
    then exported."""

    def _models(self):
        model = modern_model(Switcher())
        mask_all(model, [0.5, 0.5, 0.9, 0.8, 0.9])
        inputs = keras.Input((6, 8))
        h = keras.layers.MultiHeadAttention(2, 4, name="attention")(inputs, inputs)
        outputs = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(h + inputs))
        attention = keras_switch.switch_model(keras.Model(inputs, outputs),
                                              layers=["attention", "head"])
        mask_all(attention, [0.8, 0.8, 0.8, 0.8, 0.9])
        rng = np.random.RandomState(6)
        return [(model, rng.normal(size=(5, 8, 8, 3)).astype("float32")),
                (attention, rng.normal(size=(5, 6, 8)).astype("float32"))]

    def test_export_sparse_stores_every_kernel_compactly(self):
        directory = self.create_tempdir().full_path
        for i, (model, x) in enumerate(self._models()):
            want = keras_switch.strip_switches(model).predict(x, verbose=0)
            result = keras_switch.export_sparse(model, os.path.join(directory, f"m{i}"))
            self.assertEqual([row["name"] for row in result["layers"]],
                             [layer.name for layer in model.switched_layers])
            for row, layer in zip(result["layers"], model.switched_layers):
                self.assertEqual(row["shape"], list(layer.kernel.shape))
                self.assertEqual(row["nonzeros"],
                                 int(np.count_nonzero(keras.ops.convert_to_numpy(
                                     layer.effective_kernel()))))
            (got,) = _load_and_serve(result["directory"], x)
            self.assertAllClose(got, want, atol=1e-5)

    def test_sparse_kernel_layer(self):
        rng = np.random.RandomState(0)
        conv = keras.layers.Conv1D(4, 3, padding="causal", activation="relu",
                                   bias_initializer="random_normal")
        x = rng.normal(size=(2, 7, 5)).astype("float32")
        conv(x)
        conv.kernel.assign(exact_mask((3, 5, 4), 0.8, rng) * conv.kernel.numpy())
        layer = keras_switch.sparse.SparseKernel.from_layer(conv)
        self.assertEqual(layer.storage, "delta")
        self.assertEqual(layer.nonzeros, int(np.count_nonzero(conv.kernel.numpy())))
        self.assertAllEqual(layer.dense_kernel(), conv.kernel.numpy())
        self.assertAllClose(layer(x), conv(x), atol=1e-5)
        self.assertEqual(layer.compute_output_shape((None, 7, 5)), (None, 7, 4))
        revived = keras_switch.sparse.SparseKernel.from_config(
            json.loads(json.dumps(layer.get_config())))
        self.assertAllClose(revived(x), conv(x), atol=1e-5)
        with self.assertRaisesRegex(ValueError, "SparseKernel stores the kernel of.*Received: "
                                                "a Dense layer config"):
            keras_switch.sparse.SparseKernel(keras.layers.serialize(keras.layers.Dense(2)),
                                             (3, 2), "dense", None, np.zeros((3, 2), "float32"))

    def test_export_tflite(self):
        for model, x in self._models():
            want = keras_switch.strip_switches(model)(x)
            path = os.path.join(self.create_tempdir().full_path, "m.tflite")
            keras_switch.export_tflite(model, path)
            self.assertAllClose(run_tflite(path, x), want, atol=1e-4)


class SizeTest(TestCase):
    def test_gzip_size_is_deterministic(self):
        directory = self.create_tempdir().full_path
        os.makedirs(os.path.join(directory, "sub"))
        contents = {"b.bin": os.urandom(3000), "sub/a.txt": b"abc" * 1000}
        for name, data in contents.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        want = sum(len(gzip.compress(d, 9, mtime=0)) for d in contents.values())
        self.assertEqual(export.gzip_size(directory), want)
        os.utime(os.path.join(directory, "b.bin"), (1, 1))
        self.assertEqual(export.gzip_size(directory), want)
        self.assertEqual(export.raw_size(directory), 6000)
        self.assertEqual(
            export.gzip_size(os.path.join(directory, "sub/a.txt")),
            len(gzip.compress(contents["sub/a.txt"], 9, mtime=0)),
        )
        with self.assertRaisesRegex(FileNotFoundError, "nope"):
            export.gzip_size(os.path.join(directory, "nope"))


class ExportTfliteTest(TestCase):
    def test_lenet300_matches_stripped_model_and_is_stored_sparsely(self):
        model = models.lenet_300_100(switcher=Switcher())
        model(np.zeros((1, 28, 28), "float32"))
        mask_all(model, [0.95, 0.95, 0.95])
        x = np.random.RandomState(6).uniform(size=(3, 28, 28)).astype("float32")
        want = keras_switch.strip_switches(model)(x)
        directory = self.create_tempdir().full_path
        sizes = {}
        for sparse in (True, False):
            path = os.path.join(directory, f"{sparse}.tflite")
            self.assertEqual(keras_switch.export_tflite(model, path, sparse=sparse), path)
            self.assertAllClose(run_tflite(path, x), want, atol=1e-5)
            sizes[sparse] = os.path.getsize(path)
        self.assertCountEqual(os.listdir(directory), ["True.tflite", "False.tflite"])
        self.assertLess(sizes[True], 0.1 * sizes[False])

    def test_subclassed_model_raises(self):
        model = SubclassedNet()
        model(np.ones((1, 64), "float32"))
        with self.assertRaisesRegex(ValueError, "export_tflite.*freeze_switches"):
            keras_switch.export_tflite(model, os.path.join(self.create_tempdir(), "m.tflite"))


if __name__ == "__main__":
    tf.test.main()
