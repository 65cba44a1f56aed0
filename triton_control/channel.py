"""Where and how to connect: gRPC targets for one Triton or several replicas, and the channel's settings."""

from __future__ import annotations

import socket

from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

MAX_RECONNECT_BACKOFF_MS = 5000


def grpc_target(url: str) -> str:
    """gRPC's target for ``url``: ``host:port`` (a leading ``grpc://`` is dropped), a gRPC URI
    (``dns:///name:port``), or a comma-separated list of ``host:port``, resolved here into gRPC's address-list
    form (``ipv4:a:p,b:p``), which takes addresses only."""
    endpoints = [endpoint.strip().removeprefix("grpc://") for endpoint in url.split(",") if endpoint.strip()]
    if len(endpoints) == 1:
        return endpoints[0]
    addresses: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit() or "/" in host:
            raise ValueError(f"Triton URL: {endpoint!r} is not host:port (a list takes host:port only)")
        for family, _, _, _, address in socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM):
            if family == socket.AF_INET:
                addresses["ipv4"].append(f"{address[0]}:{port}")
            elif family == socket.AF_INET6:
                addresses["ipv6"].append(f"[{address[0]}]:{port}")
    scheme = "ipv4" if addresses["ipv4"] else "ipv6"  # gRPC's list holds one family
    return f"{scheme}:{','.join(dict.fromkeys(addresses[scheme]))}"


def port_of(url: str) -> int | None:
    """The port of a single ``host:port`` target; None for a list or a name without one."""
    _, _, port = url.rpartition(":")
    return int(port) if port.isdigit() and "," not in url else None


def lb_policy_for(url: str, lb_policy: str) -> str:
    """``auto``: round_robin over several replicas (a list, or a DNS name), else pick_first."""
    if lb_policy != "auto":
        return lb_policy
    return "round_robin" if "," in url or url.startswith("dns:") else "pick_first"


def channel_args(url: str, lb_policy: str) -> list[tuple[str, int | str]]:
    """The channel's settings; ``lb_policy`` round_robin spreads requests over every address ``url`` resolves to
    (gRPC keeps connections open, so a plain Service would pin each client to one Triton replica)."""
    keepalive = KeepAliveOptions()
    return [  # tritonclient's defaults, which passing channel_args replaces
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.lb_policy_name", lb_policy_for(url, lb_policy)),
        # A replica that went away is tried again within 5 s (gRPC's default backoff grows to 120 s): a
        # restarted Triton takes traffic again soon after it is back.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]
