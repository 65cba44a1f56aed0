"""Gateway settings, from environment variables (prefix ``GATEWAY_``) with documented defaults."""

from __future__ import annotations

import functools

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from triton_steps.contract import DEFAULT_GATEWAY_PORT, DEFAULT_LOADER_PORT, TRITON_GRPC_PORT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    triton_url: str = Field(
        f"127.0.0.1:{TRITON_GRPC_PORT}",
        description="Triton's gRPC endpoint: host:port, several replicas as host:port,host:port, or "
        "dns:///name:port for every address a name resolves to",
    )
    triton_lb_policy: str = Field(
        "auto",
        pattern="^(auto|pick_first|round_robin)$",
        description="gRPC load balancing over the replicas: round_robin (one connection per replica, requests "
        "spread over the ready ones), pick_first (one at a time, the next on failure), or auto: round_robin for "
        "a list or a dns:/// name, else pick_first",
    )
    default_model: str = Field("", description="model answering POST / (Triton name or model id); empty: the only one")
    api_token: SecretStr | None = Field(None, description="if set, requests need 'Authorization: Bearer <token>'")
    max_body_bytes: int = Field(25 * 1024 * 1024, description="larger request bodies are refused with 413")
    timeout_s: float = Field(30.0, description="per-request inference timeout; 504 past it")
    body_timeout_s: float = Field(30.0, description="the whole body must arrive within this; 408 past it")
    body_min_rate: float = Field(
        1024.0, ge=0, description="bytes/s a body must average after body_grace_s; 408 as soon as it falls behind"
    )
    body_grace_s: float = Field(5.0, ge=0, description="how long a body may arrive at any rate before the minimum")
    header_timeout_s: float = Field(
        10.0, description="a request's headers must arrive within this of connecting, or of the request's first byte"
    )
    max_concurrent_requests: int = Field(
        256,
        description="classify requests in progress at once, per worker; 503 beyond (a live stream's window waits "
        "for a slot instead, up to stream_max_lag_s)",
    )
    max_heavy_requests: int = Field(
        1,
        ge=1,
        description="requests heavy to decode (over 2^20 samples: about 11 s of 48 kHz stereo) sent to Triton at once, "
        "per worker; the others wait their turn, so light requests are not stuck behind them",
    )
    max_inflight_body_bytes: int = Field(
        256 * 1024 * 1024, description="request body bytes held at once, over all requests of a worker; 503 beyond"
    )
    max_connections: int = Field(
        1024, description="open connections per worker (uvicorn's limit_concurrency); 503 beyond"
    )
    keep_alive_s: float = Field(
        75.0,
        gt=0,
        description="idle keep-alive connections are closed after this: longer than clients and load balancers "
        "keep theirs (httpx 5 s, aiohttp 15 s, nginx and AWS load balancers 60 s), so that the client, never the "
        "gateway, closes an idle connection and no request meets a connection closing under it",
    )
    max_header_bytes: int = Field(16 * 1024, gt=0, description="request headers over this many bytes: 431")
    max_headers: int = Field(100, gt=0, description="requests with more headers than this: 431")
    max_streams: int = Field(256, ge=0, description="live-audio WebSocket streams open at once, per worker")
    stream_idle_s: float = Field(30.0, gt=0, description="a stream with no message for this long is closed")
    stream_config_timeout_s: float = Field(
        5.0, gt=0, description="a stream's first message (its configuration and token) must come within this"
    )
    stream_max_speed: float = Field(
        4.0, gt=0, description="a stream's windows are scored no faster than this many times real time"
    )
    stream_max_lag_s: float = Field(
        10.0,
        gt=0,
        description="a stream this far behind real time (the gateway cannot keep up) is closed, 1013; also the "
        "longest a window waits for a classification slot at max_concurrent_requests",
    )
    stream_max_message_bytes: int = Field(
        1024 * 1024, gt=0, description="largest message of a stream (10 s of 48 kHz 16-bit PCM is 960 kB)"
    )
    host: str = Field("127.0.0.1", description="address the gateway listens on")
    port: int = Field(DEFAULT_GATEWAY_PORT, description="port the gateway listens on")
    workers: int = Field(1, ge=1, description="gateway processes sharing the port (metrics are summed over them)")
    retry_after_s: int = Field(5, description="Retry-After sent with 503 answers")
    drain_s: float = Field(
        30.0,
        ge=0,
        description="on SIGTERM, /ready turns 503 and new requests get 503 while those in flight finish, for "
        "up to this long; then the gateway exits",
    )
    models_refresh_s: float = Field(10.0, description="how often, at most, the model list is re-read from Triton")
    log_level: str = Field("info", pattern="(?i)^(debug|info|warning|error)$", description="gateway log level")
    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json: one JSON object per line")
    autoload: str = Field(
        "",
        description="Hub ids exported and loaded on first request: comma-separated fnmatch patterns (e.g. "
        "'superb/*,MIT/ast-*', or '*'); empty: an unknown id is a 404",
    )
    loader_url: str = Field(
        f"http://127.0.0.1:{DEFAULT_LOADER_PORT}", description="the loader (python -m loader) that exports them"
    )
    max_loaded_models: int = Field(
        4, ge=1, description="on-demand models loaded at once; the least recently used idle one makes room"
    )
    pinned_models: str = Field("", description="on-demand model ids never unloaded (comma-separated)")
    cors_origins: str = Field(
        "",
        description="web origins whose pages may call the gateway from a browser (comma-separated, e.g. "
        "'https://app.example.com', or '*'); empty: none (no CORS headers)",
    )
    wait_for_model_s: float = Field(
        300.0, gt=0, description="how long X-Wait-For-Model / options.wait_for_model wait for a loading model"
    )

    def autoload_patterns(self) -> list[str]:
        return [p.strip() for p in self.autoload.split(",") if p.strip()]

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def pinned(self) -> set[str]:
        return {p.strip() for p in self.pinned_models.split(",") if p.strip()}


@functools.cache
def from_environment() -> Settings:
    """The settings of this process, read from the environment once: ``python -m gateway``, the app and the
    HTTP protocol all use this one (uvicorn builds the app and the protocol by import path, in each worker
    process, with no way to hand them an object)."""
    return Settings()
