"""``python -m adaptx``: the ``adaptx`` command (:mod:`adaptx.cli`)."""

import sys

from adaptx.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m adaptx"))
