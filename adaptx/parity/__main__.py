"""``python -m adaptx.parity``: the parity table (see :mod:`adaptx.parity.table`)."""

import sys

from adaptx.parity.table import main

sys.exit(main())
