"""Core's tests: ``repo`` and ``examples_path`` come from conveyor_testing's plugin."""

from __future__ import annotations

import sys
from pathlib import Path

# tests_support sits beside this file; the unit and integration folders import it.
sys.path.insert(0, str(Path(__file__).parent))
