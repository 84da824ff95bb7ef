"""``python -m mdm_energy`` runs the command line."""

import sys

from .cli import main

sys.exit(main())
