"""winback benchmark harness: ``.venv/bin/python -m bench.run`` (see bench/README.md).

Figures are always paired with a baseline measured in the same run on the same machine;
nothing here is a test, and no timed assertion lives in the test suite.
"""
