"""``python -m flagd`` runs the ``flagd`` command line."""

import sys

from flagd.cli import main

if __name__ == "__main__":
    sys.exit(main())
