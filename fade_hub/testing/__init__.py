"""Fixture builders for the tests and benchmarks only (tiny models from configs, small trained fixtures).

No production module imports this package; ``tests/test_imports.py`` holds that.
"""
