"""``python -m tessera.train RECIPE [key=value ...]`` (also ``torchrun ... -m tessera.train``)."""

import sys

from .cli import main

sys.exit(main())
