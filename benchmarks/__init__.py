"""Benchmarks and soaks, run from the repository root as ``python -m benchmarks.<name>`` (the Makefile's
``bench*`` and ``soak`` verbs): real-size models against transformers' pipeline, the gateway's overhead, live
streams, on-demand loading, an idle stack's cost, and 10,000 requests under load."""
