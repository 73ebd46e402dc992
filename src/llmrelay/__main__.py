"""``python -m llmrelay``."""

import sys

from .cli import main

sys.exit(main())
