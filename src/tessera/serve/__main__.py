"""``python -m tessera.serve --model PATH``: the server without the main CLI."""

import sys

from .cli import main

sys.exit(main())
