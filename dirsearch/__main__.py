"""``python -m dirsearch``: the same command line as the ``dirsearch`` script."""

import sys

from dirsearch.cli.main import main

sys.exit(main())
