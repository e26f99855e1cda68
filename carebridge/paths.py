"""Where the checkout's data folders are.

The product runs from its checkout: the vendored FHIR definitions (``profiles/``), the
mapping tables (``mappings/``) and the runtime folder (``var/``) sit beside the packages.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
R4_DEFINITIONS = PROFILES / "r4"
MAPPINGS = ROOT / "mappings"
DEMO_DATA = ROOT / "carebridge" / "demo"
VAR = ROOT / "var"
