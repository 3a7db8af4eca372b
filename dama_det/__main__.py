"""``python -m dama_det`` is ``dama-det``."""
import sys

from .cli import main

sys.exit(main())
