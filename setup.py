"""keras-switch: learn sparse fully connected layers with a switcher network."""

import pathlib

from setuptools import find_packages
from setuptools import setup

here = pathlib.Path(__file__).parent

# The training binary and its configs ship inside the private package
# _keras_switch_train (the `keras-switch-train` console script), not as
# top-level `trainers` and `configs` packages, which would shadow a user's
# own: the checkout's trainers/ and configs/ install as
# _keras_switch_train/trainers and _keras_switch_train/configs.
TRAIN = "_keras_switch_train"

setup(
    name="keras-switch",
    version="0.1.0",
    description=(
        "Keras 3 SwitchedDense layers whose connections a shared switcher "
        "network learns to turn on or off"
    ),
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    # No project_urls: the project has no public home page or repository yet.
    keywords=[
        "keras", "tensorflow", "sparsity", "pruning", "sparse neural networks",
        "model compression", "deep learning",
    ],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.10",
    packages=find_packages(include=["keras_switch", "keras_switch.*"])
    + [TRAIN, f"{TRAIN}.trainers", f"{TRAIN}.configs"],
    package_dir={f"{TRAIN}.trainers": "trainers", f"{TRAIN}.configs": "configs"},
    entry_points={"console_scripts": [f"keras-switch-train = {TRAIN}:main"]},
    # TensorFlow is an extra, not a hard requirement: pip cannot tell that
    # `tensorflow-cpu` provides `tensorflow`, so requiring either would drag
    # the wrong wheel into the other kind of install. Pick one:
    #   pip install 'keras-switch[cpu]'   (tensorflow-cpu, ~250 MB)
    #   pip install 'keras-switch[gpu]'   (tensorflow[and-cuda])
    # tensorboard: TensorFlow no longer brings it, and monitoring
    # (SwitchSummaries, keras.callbacks.TensorBoard) needs it.
    install_requires=["keras>=3.6", "numpy", "tensorboard"],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.18"],
        "gpu": ["tensorflow[and-cuda]>=2.18"],
        # The JAX backend (KERAS_BACKEND=jax): training, save/load, DataParallel.
        # The exports, SwitchSummaries and the trainer's tf.data input still
        # need TensorFlow: add [cpu] for them.
        "jax": ["jax>=0.4.30"],
        # The PyTorch backend (KERAS_BACKEND=torch): training and save/load on
        # one device. Choose the build (CPU or CUDA) with PyTorch's index.
        "torch": ["torch>=2.1"],
        "train": ["ml_collections", "absl-py", "tensorboard"],
        "bench": ["matplotlib", "ml_collections", "absl-py", "tensorboard"],
        "test": ["pytest>=8", "pytest-xdist", "scikit-learn", "ml_collections", "absl-py", "tensorboard",
                 "matplotlib", "jax>=0.4.30"],
        # `make docs`: the documentation site (mkdocs.yml).
        "docs": ["mkdocs>=1.6.1", "mkdocstrings>=1.0", "mkdocstrings-python>=2.0"],
    },
)
