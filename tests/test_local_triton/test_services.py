"""local_triton.services: gateway settings are checked by name before a process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_triton.services import GatewayProcess


def test_a_misspelt_gateway_setting_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not gateway settings: defualt_model"):
        GatewayProcess("127.0.0.1:1", 1, tmp_path / "gateway.log", defualt_model="m")
    process = GatewayProcess("127.0.0.1:1", 1, tmp_path / "gateway.log", default_model="m", drain_s="3")
    assert process.env["GATEWAY_DEFAULT_MODEL"] == "m" and process.env["GATEWAY_DRAIN_S"] == "3"
