"""Processes as ``/proc`` shows them: the one place this project reads it (the stub health check, local mode's
clean-up, the tests and the benchmarks). Linux only; a process that exits while it is read is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    argv: list[str]  # the command line, ``argv[0]`` first


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` this project uses."""

    state: str  # "R", "S", ..., "Z" for a zombie
    ppid: int
    pgrp: int
    cpu_ticks: int  # user + system time, in clock ticks
    start_ticks: int  # when it started, in clock ticks since boot


def processes() -> Iterator[Process]:
    """Every visible process that has a command line (zombies and kernel threads have none)."""
    for cmdline in PROC.glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:  # gone meanwhile
            continue
        if raw:
            yield Process(int(cmdline.parent.name), raw.decode(errors="replace").rstrip("\0").split("\0"))


def stat(pid: int) -> Stat | None:
    """``pid``'s stat; None once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (name)"
    except (OSError, IndexError):
        return None
    return Stat(fields[0], int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[19]))


def pids() -> Iterator[int]:
    """Every visible pid, zombies included."""
    for entry in PROC.glob("[0-9]*"):
        yield int(entry.name)


def mapped(pid: int) -> list[str]:
    """The files ``pid`` has mapped (its ``maps``); empty when unreadable or gone."""
    try:
        lines = (PROC / str(pid) / "maps").read_text().splitlines()
    except OSError:
        return []
    return [line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6]


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of ``/proc/<pid>/status`` (VmRSS now, VmHWM the peak) in MB; 0 once it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def environ(pid: int) -> dict[str, str]:
    """``pid``'s environment (readable for this user's processes); empty once it is gone."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
