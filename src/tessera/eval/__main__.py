"""``python -m tessera.eval`` / ``torchrun -m tessera.eval``: see :mod:`tessera.eval.cli`."""

import sys

from tessera.eval.cli import main

sys.exit(main())
