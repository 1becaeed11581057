"""The machinery every benchmark shares. Each `benchmarks/<question>.py` is
that question's protocol and `main`, built from these modules, one concern
each:

    cli        the absl flags the benchmarks share, and checks of their values
    data       Fashion-MNIST as every method trains on it, and its identity
    lenet      LeNet-300-100 and LeNet-5 in Keras 3 or Keras 2 (TFMOT)
    baselines  plain Keras 3 models, the one init per (model, seed), masked
               layers and gradual magnitude (or random) pruning
    runs       one training run: dense or gradually pruned, or keras-switch
               with the trainer's recipe
    measure    what a run measured: test accuracy, its final kernels
    sparsity   exact zeros counted in kernels (Keras 2's too)
    cache      one JSON file per run, reused only while its key holds
    stats      means and spreads over seeds, differences paired by seed
    tables     markdown tables and the cells they share
    plots      matplotlib figures
    timing     interleaved timing windows and training-step timing
    report     results JSON and the generated sections of BENCHMARKS.md
    trainer    the training binary, run in a fresh process
"""
