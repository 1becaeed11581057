"""keras_switch.convert: `switch_model` (a switched clone that predicts
exactly what the original does, selection, errors, the pretrained-model
path) and `copy_weights` (exact weights copied by layer name, and the errors
that name what does not fit)."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_switch
from keras_switch import models as zoo

from keras_switch import SwitchedDense
from keras_switch import Switcher
from keras_switch import SwitchingModel
from keras_switch import sparsity_report
from keras_switch import strip_switches
from keras_switch import switch_model
from keras_switch.convert import copy_weights
from tests.test_case import TestCase
from tests.test_case import compile_for_classes
from tests.test_case import digits
from tests.test_case import snapshot


def dense_net(hidden=3, use_bias=True, head="head"):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(hidden, activation="relu", use_bias=use_bias, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    outputs = keras.layers.Dense(2, name=head)(x)
    return keras.Model(inputs, outputs, name="dense_net")


def switched_net(hidden=3, extra=False):
    switcher = Switcher()
    inputs = keras.Input((4,))
    x = SwitchedDense(hidden, activation="relu", switcher=switcher, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    if extra:
        x = SwitchedDense(hidden, switcher=switcher, name="extra")(x)
    outputs = SwitchedDense(2, switcher=switcher, name="head")(x)
    return SwitchingModel(inputs, outputs, name="switched_net")


def set_weights(model, seed=1):
    """Distinct, hand-known values in every weight of `model`."""
    rng = np.random.RandomState(seed)
    for variable in model.weights:
        variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))


class CopyWeightsTest(TestCase):
    def test_dense_into_switched_copies_exact_weights(self):
        source, target = dense_net(), switched_net()
        set_weights(source)
        switcher_before = snapshot(target.switchers[0].weights)
        masks_before = [layer.mask.numpy() for layer in target.switched_layers]
        copied = copy_weights(source, target)
        self.assertEqual(copied, {"matched": ["hidden", "norm", "head"], "fresh": [],
                                  "ignored": []})
        for name in ("hidden", "head"):
            self.assertAllEqual(target.get_layer(name).kernel.numpy(),
                                source.get_layer(name).kernel.numpy())
            self.assertAllEqual(target.get_layer(name).bias.numpy(),
                                source.get_layer(name).bias.numpy())
        # BatchNormalization: all four weights, moving statistics included.
        for have, want in zip(target.get_layer("norm").weights, source.get_layer("norm").weights):
            self.assertAllEqual(have.numpy(), want.numpy())
        # The switcher and the masks are left alone.
        for have, want in zip(target.switchers[0].weights, switcher_before):
            self.assertAllEqual(have.numpy(), want)
        for layer, mask in zip(target.switched_layers, masks_before):
            self.assertAllEqual(layer.mask.numpy(), mask)

    def test_switched_into_dense(self):
        source, target = switched_net(), dense_net()
        set_weights(source)
        copy_weights(source, target)
        self.assertAllEqual(target.get_layer("hidden").kernel.numpy(),
                            source.get_layer("hidden").kernel.numpy())
        # Same predictions: every switch of a fresh switched layer is on.
        source.get_layer("norm").set_weights(target.get_layer("norm").get_weights())
        x = np.random.RandomState(0).normal(size=(5, 4)).astype("float32")
        for layer in source.switched_layers:
            layer.freeze_mask(np.ones(layer.kernel.shape, "float32"))
        self.assertAllClose(target.predict(x, verbose=0), source.predict(x, verbose=0))

    def test_lists_fresh_and_ignored_layers(self):
        source, target = dense_net(head="classifier"), switched_net(extra=True)
        set_weights(source)
        copied = copy_weights(source, target)
        self.assertEqual(copied, {"matched": ["hidden", "norm"], "fresh": ["extra", "head"],
                                  "ignored": ["classifier"]})

    def test_shape_mismatch_names_layer_weight_and_shapes(self):
        source, target = dense_net(hidden=5), switched_net(hidden=3)
        before = snapshot(target.weights)
        with self.assertRaisesRegex(
            ValueError,
            r"^Layer 'hidden' kernel has shape \(4, 5\) in the source model but "
            r"\(4, 3\) in the target model\.$",
        ):
            copy_weights(source, target)
        # Everything is checked before anything is copied.
        for have, want in zip(target.weights, before):
            self.assertAllEqual(have.numpy(), want)

    def test_weight_names_mismatch(self):
        source, target = dense_net(use_bias=False), switched_net()
        with self.assertRaisesRegex(
            ValueError,
            r"^Layer 'hidden' holds weights \['kernel'\] in the source model but "
            r"\['kernel', 'bias'\] in the target model\.$",
        ):
            copy_weights(source, target)

    def test_no_matching_layer_lists_both_sets(self):
        inputs = keras.Input((4,))
        source = keras.Model(inputs, keras.layers.Dense(2, name="other")(inputs), name="src")
        with self.assertRaisesRegex(
            ValueError,
            r"^No layer of the source model 'src' matches a layer of the target "
            r"model 'switched_net' by name\. Layers with weights in the source: "
            r"\['other'\]; in the target: \['head', 'hidden', 'norm'\]\.$",
        ):
            copy_weights(source, switched_net())

    def test_each_attention_layers_projections_are_matched_by_their_owner(self):
        plain = zoo.vit(depth=2)
        target = zoo.build_model("vit", (28, 28), 10, depth=2,
                                                 switched_layers="all")
        copied = copy_weights(plain, target)
        self.assertIn("block1_attention/query", copied["matched"])
        self.assertIn("block2_attention/query", copied["matched"])
        self.assertEqual(copied["fresh"], [])
        x = np.random.RandomState(0).uniform(size=(2, 28, 28)).astype("float32")
        self.assertAllClose(target.predict(x, verbose=0), plain.predict(x, verbose=0),
                            atol=1e-6)

    def test_nested_models_are_walked(self):
        inner = dense_net()
        inputs = keras.Input((4,))
        outer = keras.Model(inputs, inner(inputs), name="outer")
        set_weights(outer)
        target = switched_net()
        self.assertEqual(copy_weights(outer, target)["matched"], ["hidden", "norm", "head"])
        self.assertAllEqual(target.get_layer("head").kernel.numpy(),
                            inner.get_layer("head").kernel.numpy())


def nested_net():
    """Functional: Dense -> BatchNormalization -> nested Sequential (two
    Dense, Dropout) -> a Dense head used twice (a shared layer) -> Add."""
    inner = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(5, activation="relu", name="inner_a"),
                              keras.layers.Dropout(0.2, name="drop"),
                              keras.layers.Dense(4, activation="tanh", name="inner_b")],
                             name="inner")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, activation="relu", name="first")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = inner(x)
    head = keras.layers.Dense(4, use_bias=False, name="head")
    outputs = keras.layers.Add(name="add")([head(x), head(head(x))])
    model = keras.Model(inputs, outputs, name="nested")
    set_weights(model)
    return model


def transformer_block():
    """A transformer encoder block written the Keras 3 way (residuals by
    operator), with a Dense head."""
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")(
        inputs, inputs)
    h = keras.layers.LayerNormalization(name="norm1")(h + inputs)
    m = keras.layers.Dense(16, activation="gelu", name="mlp_in")(h)
    h = keras.layers.LayerNormalization(name="norm2")(h + keras.layers.Dense(8, name="mlp_out")(m))
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs, name="block")
    set_weights(model)
    return model


def inputs_for(model, n=32, seed=0):
    return np.random.RandomState(seed).normal(size=(n,) + model.input_shape[1:]).astype("float32")


class SwitchModelTest(TestCase):
    def test_sequential_predicts_exactly_as_the_original(self):
        model = keras.Sequential([keras.Input((4,)),
                                  keras.layers.Dense(8, activation="relu", name="a"),
                                  keras.layers.Dense(3, activation="softmax", name="b")],
                                 name="seq")
        set_weights(model)
        before = snapshot(model.weights)
        switched = switch_model(model)
        self.assertIsInstance(switched, SwitchingModel)
        self.assertEqual(switched.name, "seq")
        self.assertEqual([layer.name for layer in switched.switched_layers], ["a", "b"])
        x = inputs_for(model)
        self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))
        self.assertAllEqual(switched(x, training=True), model(x, training=True))
        for layer in switched.switched_layers:  # every switch starts on
            self.assertAllEqual(layer.hard_mask(), np.ones(layer.kernel.shape))
        # The original is untouched, and shares no variable with the clone.
        for variable, value in zip(model.weights, before):
            self.assertAllEqual(variable.numpy(), value)
        self.assertEmpty({id(v) for v in model.weights} & {id(v) for v in switched.weights})

    def test_functional_nested_and_shared_layers(self):
        model = nested_net()
        switched = switch_model(model)
        self.assertEqual([layer.name for layer in switched.switched_layers],
                         ["first", "inner_a", "inner_b", "head"])
        self.assertLen(switched.switchers, 1)  # one switcher serves them all
        x = inputs_for(model)
        self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))
        # The nested Sequential stays a nested model; the shared head stays one layer.
        self.assertIsInstance(switched.get_layer("inner"), keras.Sequential)
        self.assertEqual([layer.name for layer in switched.layers].count("head"), 1)
        # BatchNormalization's moving statistics came along.
        for have, want in zip(switched.get_layer("norm").weights, model.get_layer("norm").weights):
            self.assertAllEqual(have.numpy(), want.numpy())

    def test_operation_nodes_are_cloned(self):
        # A residual by operator and keras.ops calls are operation nodes of
        # the graph, not layers: they hold no weights to copy.
        inputs = keras.Input((4,))
        h = keras.layers.Dense(4, activation="relu", name="a")(inputs)
        h = h + inputs
        h = keras.ops.multiply(keras.ops.tanh(h), 0.5)
        outputs = keras.layers.Dense(2, name="b")(h)
        model = keras.Model(inputs, outputs, name="residual")
        set_weights(model)
        switched = switch_model(model)
        self.assertEqual([layer.name for layer in switched.switched_layers], ["a", "b"])
        x = inputs_for(model)
        self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))
        stripped = strip_switches(switched)
        self.assertAllEqual(stripped.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_a_transformer_block_switches_its_dense_layers(self):
        model = transformer_block()
        switched = switch_model(model)
        self.assertEqual([layer.name for layer in switched.switched_layers],
                         ["mlp_in", "mlp_out", "head"])
        x = inputs_for(model)
        self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))
        # The attention's own sub-layers (softmax, dropout) are named anew on
        # rebuild; the stripped model still pairs every weight.
        stripped = strip_switches(switched)
        self.assertAllEqual(stripped.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_attention_projections_are_switched(self):
        model = transformer_block()
        x = inputs_for(model)
        everything = switch_model(model, layers=lambda layer: isinstance(
            layer, (keras.layers.Dense, keras.layers.EinsumDense)))
        self.assertEqual([layer.name for layer in everything.switched_layers],
                         ["query", "key", "value", "attention_output", "mlp_in", "mlp_out",
                          "head"])
        attention = everything.get_layer("attention")
        self.assertIsInstance(attention, keras_switch.SwitchedMultiHeadAttention)
        self.assertIsInstance(attention.query_dense, keras_switch.SwitchedEinsumDense)
        self.assertAllEqual(everything.predict(x, verbose=0), model.predict(x, verbose=0))
        # The attention layer itself (all four), or some projections by name.
        whole = switch_model(model, layers=["attention"])
        self.assertLen(whole.switched_layers, 4)
        some = switch_model(model, layers=["query", "value"])
        self.assertEqual([layer.name for layer in some.switched_layers], ["query", "value"])
        self.assertIs(type(some.get_layer("attention").key_dense), keras.layers.EinsumDense)
        self.assertAllEqual(some.predict(x, verbose=0), model.predict(x, verbose=0))
        # Switched off entries change the predictions; stripping keeps them.
        for layer in everything.switched_layers:
            layer.freeze_mask(np.random.RandomState(0).binomial(1, 0.5, layer.kernel.shape))
        pruned = everything.predict(x, verbose=0)
        self.assertGreater(np.abs(pruned - model.predict(x, verbose=0)).max(), 1e-3)
        stripped = strip_switches(everything)
        self.assertIs(type(stripped.get_layer("attention")), keras.layers.MultiHeadAttention)
        self.assertAllClose(stripped.predict(x, verbose=0), pruned, atol=1e-5)
        path = os.path.join(self.get_temp_dir(), "block.keras")
        everything.save(path)
        loaded = keras.models.load_model(path)  # safe mode
        self.assertEqual([layer.name for layer in loaded.switched_layers],
                         [layer.name for layer in everything.switched_layers])
        self.assertLen(loaded.switchers, 1)
        self.assertAllEqual(loaded.predict(x, verbose=0), pruned)

    def test_a_shared_attention_layer_in_a_nested_model(self):
        # One attention layer applied twice (shared), inside a nested functional model.
        tokens = keras.Input((5, 8))
        attention = keras.layers.MultiHeadAttention(2, 4, name="shared_attention")
        h = attention(tokens, tokens)
        h = attention(h, h) + tokens
        inner = keras.Model(tokens, h, name="inner")
        inputs = keras.Input((5, 8))
        outputs = keras.layers.Dense(3, name="head")(
            keras.layers.GlobalAveragePooling1D()(inner(inputs)))
        model = keras.Model(inputs, outputs, name="outer")
        set_weights(model)
        switched = switch_model(model, layers=["shared_attention", "head"])
        self.assertEqual([layer.name for layer in switched.switched_layers],
                         ["query", "key", "value", "attention_output", "head"])
        x = inputs_for(model)
        self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))
        for layer in switched.switched_layers:
            layer.freeze_mask(np.random.RandomState(1).binomial(1, 0.6, layer.kernel.shape))
        stripped = strip_switches(switched)
        self.assertAllClose(stripped.predict(x, verbose=0), switched.predict(x, verbose=0),
                            atol=1e-5)

    def test_sub_layers_of_other_layers_and_separable_convolutions_are_refused(self):
        class Block(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.inner = keras.layers.Dense(4, name="inner")

            def call(self, x):
                return self.inner(x)

        inputs = keras.Input((3,))
        model = keras.Model(inputs, Block(name="block")(inputs))
        with self.assertRaisesRegex(ValueError, "'inner', a sub-layer of 'block' "
                                                r"\(Block\).*MultiHeadAttention only"):
            switch_model(model, layers=["inner"])
        images = keras.Input((8, 8, 3))
        separable = keras.Model(images, keras.layers.SeparableConv2D(2, 3, name="sep")(images))
        with self.assertRaisesRegex(ValueError, r"'sep' \(SeparableConv2D: .*DepthwiseConv2D "
                                                "followed by a 1x1 Conv2D"):
            switch_model(separable, layers=["sep"])

    def test_selection_by_names_regex_and_predicate(self):
        model = nested_net()
        by_names = switch_model(model, layers=["inner_b", "first"])
        self.assertEqual([layer.name for layer in by_names.switched_layers], ["first", "inner_b"])
        by_regex = switch_model(model, layers="inner_.*")
        self.assertEqual([layer.name for layer in by_regex.switched_layers],
                         ["inner_a", "inner_b"])
        # The whole name must match: "inner" alone matches no layer name.
        with self.assertRaisesRegex(ValueError, "regular expression layers='inner' "
                                                "selects no layer"):
            switch_model(model, layers="inner")
        by_predicate = switch_model(
            model, layers=lambda layer: getattr(layer, "use_bias", True) is False)
        self.assertEqual([layer.name for layer in by_predicate.switched_layers], ["head"])
        # Layers left plain stay plain, with their weights.
        self.assertIs(type(by_predicate.get_layer("first")), keras.layers.Dense)
        x = inputs_for(model)
        for switched in (by_names, by_regex, by_predicate):
            self.assertAllEqual(switched.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_given_switcher_is_shared(self):
        switcher = Switcher(hidden_units=(4,))
        switched = switch_model(nested_net(), switcher=switcher)
        self.assertEqual(switched.switchers, [switcher])

    def test_errors_name_what_is_wrong(self):
        model = nested_net()
        cases = [
            (["first", "nope"], ValueError, "no layer of model 'nested' is named \\['nope'\\]"),
            ("(", ValueError, "layers='\\(' is not a valid regular expression"),
            ("zz.*", ValueError, "selects no layer of model 'nested'. Its layers: "),
            (["norm"], ValueError, "without a switched counterpart: 'norm' "
                                   "\\(BatchNormalization\\)"),
            (lambda layer: isinstance(layer, keras.layers.Add), ValueError,
             "'add' \\(Add\\)"),
            (lambda layer: 1, TypeError, "predicate returned 1 for layer 'first'"),
            (3, TypeError, "expected `layers` to be None, a list of layer names"),
        ]
        for layers, error, message in cases:
            with self.subTest(layers=layers), self.assertRaisesRegex(error, message):
                switch_model(model, layers=layers)
        with self.assertRaisesRegex(TypeError, "expected `switcher` to be a keras_switch.Switcher"):
            switch_model(model, switcher="switcher")
        with self.assertRaisesRegex(TypeError, "expected a keras.Model"):
            switch_model(keras.layers.Dense(3))

        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__(name="sub")
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        with self.assertRaisesRegex(ValueError, "model 'sub' is a subclassed model "
                                                "\\(Subclassed\\).*SwitchingModel as its base"):
            switch_model(Subclassed())
        with self.assertRaisesRegex(ValueError, "is not built. Give it a keras.Input"):
            switch_model(keras.Sequential([keras.layers.Dense(2)], name="unbuilt"))
        with self.assertRaisesRegex(ValueError, "already has switched layers \\['hidden', 'head'\\]"):
            switch_model(switched_net())
        # Nothing was changed by the failed calls.
        x = inputs_for(model)
        self.assertAllEqual(switch_model(model).predict(x, verbose=0), model.predict(x, verbose=0))

    def test_pretrained_model_switched_pruned_and_stripped(self):
        (x, y), (x_test, _) = digits()
        inputs = keras.Input((64,))
        hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
        pretrained = keras.Model(inputs, keras.layers.Dense(10, name="logits")(hidden))
        pretrained.compile(optimizer=keras.optimizers.Adam(1e-2),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        pretrained.fit(x, y, epochs=3, batch_size=64, verbose=0)
        switched = switch_model(pretrained)
        self.assertAllEqual(switched.predict(x_test, verbose=0),
                            pretrained.predict(x_test, verbose=0))
        compile_for_classes(switched, target_sparsity=0.9)
        history = switched.fit(x, y, epochs=3, batch_size=64, verbose=0)
        self.assertGreater(history.history["accuracy"][-1], 0.8)
        self.assertAllClose(sparsity_report(switched)["overall"], 0.9, atol=2e-3)
        stripped = strip_switches(switched)
        self.assertEqual([type(layer) for layer in stripped.layers[1:]],
                         [keras.layers.Dense, keras.layers.Dense])
        self.assertAllEqual(stripped.predict(x_test, verbose=0),
                            switched.predict(x_test, verbose=0))

    def test_convolutions_are_switched_when_selected(self):
        inputs = keras.Input((8, 8, 2))
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = keras.layers.MaxPooling2D(name="pool")(x)
        x = keras.layers.Conv2D(6, 3, strides=2, name="conv2")(x)
        x = keras.layers.Flatten(name="flat")(x)
        model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(x), name="cnn")
        set_weights(model)
        x = inputs_for(model)
        # The default is the paper's FC layers only.
        self.assertEqual([layer.name for layer in switch_model(model).switched_layers], ["fc"])
        every = switch_model(model, layers=lambda layer: isinstance(
            layer, (keras.layers.Dense, keras.layers.Conv2D)))
        self.assertEqual([type(layer).__name__ for layer in every.switched_layers],
                         ["SwitchedConv2D", "SwitchedConv2D", "SwitchedDense"])
        self.assertAllEqual(every.predict(x, verbose=0), model.predict(x, verbose=0))
        self.assertEqual(every.get_layer("conv2").strides, (2, 2))
        # copy_weights moves a switched convolution's kernel and bias back out.
        plain = keras.models.clone_model(model)
        copied = copy_weights(every, plain)
        self.assertEqual(copied["matched"], ["conv1", "conv2", "fc"])
        self.assertAllEqual(plain.predict(x, verbose=0), model.predict(x, verbose=0))

    def test_keras_file_round_trip_in_safe_mode(self):
        model = nested_net()
        switched = switch_model(model)
        compile_for_classes(switched, target_sparsity=0.5)
        x = inputs_for(model)
        switched.fit(x, np.zeros(len(x), "int32"), epochs=1, batch_size=8, verbose=0)
        path = os.path.join(self.get_temp_dir(), "switched.keras")
        switched.save(path)
        loaded = keras.models.load_model(path)  # safe_mode=True
        self.assertIsInstance(loaded, SwitchingModel)
        self.assertLen(loaded.switchers, 1)
        self.assertAllEqual(loaded.predict(x, verbose=0), switched.predict(x, verbose=0))
        for have, want in zip(loaded.switched_layers, switched.switched_layers):
            self.assertAllEqual(have.mask.numpy(), want.mask.numpy())


if __name__ == "__main__":
    tf.test.main()
