"""Test-only helpers of this directory (``ddrnet_reference_keys``) importable by name: pytest runs
in importlib mode, which does not put a test directory on ``sys.path``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
