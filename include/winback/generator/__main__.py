"""``python -m winback.generator``: see :func:`winback.generator.main`."""

import sys

from winback.generator import main

sys.exit(main())
