"""``python -m neurotrans``: the `neurotrans` command (what ``torchrun -m neurotrans train ...`` starts)."""

from __future__ import annotations

import sys

from neurotrans.cli import main

if __name__ == "__main__":
    sys.exit(main())
