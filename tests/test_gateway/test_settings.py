"""The configuration document's table is the gateway's Settings: every variable, and its default; the README's
essentials are real settings with the same defaults."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"


def test_the_configuration_document_has_every_setting_with_its_default() -> None:
    rows = [line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `GATEWAY_")]
    documented = {name for row in rows for name in re.findall(r"`GATEWAY_([A-Z_]+)`", row.split("|")[1])}
    assert documented == {name.upper() for name in Settings.model_fields}
    for row in rows:
        names, default = row.split("|")[1], row.split("|")[2]
        for name in re.findall(r"`GATEWAY_([A-Z_]+)`", names):
            value = Settings.model_fields[name.lower()].default
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                shown = str(int(value)) if float(value).is_integer() else str(value)
                assert re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d.])", default), (name, default)


def test_the_readmes_essentials_are_settings() -> None:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `GATEWAY_")]
    named = {name for row in rows for name in re.findall(r"`GATEWAY_([A-Z_]+)`", row.split("|")[1])}
    assert len(named) >= 5 and named <= {name.upper() for name in Settings.model_fields}
