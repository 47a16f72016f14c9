"""``python -m modelcore`` is the ``modelcore`` command."""

import sys

from modelcore.cli import main

sys.exit(main())
