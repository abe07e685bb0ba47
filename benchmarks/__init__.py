"""Benchmark harness: tinygrad_bp against hand-written NumPy backprop and other autograds.

Run it with ``python benchmarks/run.py`` (see ``benchmarks/README.md``).
"""
