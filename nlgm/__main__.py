"""``python -m nlgm``: see :mod:`nlgm.cli`."""
import sys

from nlgm.cli import main

sys.exit(main())
