"""Portway benchmark harness: mock upstream, floor proxy, load generators, runner.

Entry point: ``bench/run`` (see bench/README.md).
"""
