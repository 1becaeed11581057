"""The machinery every benchmark shares; each `benchmarks/<question>.py` is
that question's protocol and `main`."""
