"""``python -m adaptx.parity``: the parity table (see :mod:`adaptx.parity.table`)."""

import sys

from adaptx.parity.table import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m adaptx.parity"))
