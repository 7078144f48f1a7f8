"""``python -m orgsync.migrations revision "message"``: see :mod:`orgsync.migrations`."""

from __future__ import annotations

import sys

from orgsync.migrations import main

sys.exit(main())
