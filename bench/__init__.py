"""The benchmarks, one module per suite (core, api, jobs, seed, cluster), each printing its
baseline side by side in one run. Run from the checkout root: ``python -m bench.core
--runs 7``, or ``voicepocket bench --suite core``, which does the same.

The API suites drive a real server with the API tests' ``tests/api/server.py``, imported as
``tests.api.server``: ``tests`` has no ``__init__.py``, so from the checkout root (the
current directory under ``python -m``) it imports as a namespace package.
"""
