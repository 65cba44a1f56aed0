"""The Grafana dashboard (deploy/k8s/monitoring) queries only metrics a running stack exports: the gateway's,
Triton's and the loader's, read from their /metrics after a request."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import httpx

from local_triton.services import LoaderProcess
from local_triton.tritonserver import LocalTriton, free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "k8s" / "monitoring" / "grafana-dashboard.json"


def _queried() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\b((?:gateway|nv|loader)_[a-z_]+)", e)}


def _exported(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_metric_the_dashboard_queries_is_exported(default_served: tuple[LocalTriton, str], tmp_path) -> None:
    triton, gateway = default_served
    assert httpx.post(f"{gateway}/", content=(ROOT / "samples" / "yes.wav").read_bytes()).status_code == 200
    exported = _exported(httpx.get(f"{gateway}/metrics").text)
    exported |= _exported(
        urllib.request.urlopen(f"http://{triton.host}:{triton.ports.metrics}/metrics").read().decode()
    )
    with LoaderProcess(str(tmp_path / "repo"), free_port(), tmp_path / "loader.log") as loader:
        exported |= _exported(httpx.get(f"{loader.url}/metrics").text)
    queried = _queried()
    assert {"gateway_requests_total", "nv_inference_queue_duration_us", "loader_exports_total"} <= queried
    assert queried <= exported, queried - exported
