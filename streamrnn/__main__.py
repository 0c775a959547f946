"""``python -m streamrnn``: the command line (see ``python -m streamrnn --help``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
