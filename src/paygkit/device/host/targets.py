"""Naming a device: the target strings `open_link` takes, and opening them.

| target | channel |
|---|---|
| `sim:` | a `SimulatedDevice` on RAM memory in this process |
| `sim:PATH` | a `SimulatedDevice` on the state file PATH in this process |
| `tcp:HOST:PORT` | a TCP connection (`paygkit device simulate --serve tcp:PORT`) |
| `pty:PATH`, `serial:PATH`, or any path or pyserial URL | a serial port, 115200 8N1, raw |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from paygkit.device.host.channels.base import Channel
from paygkit.device.host.channels.in_process import InProcessChannel
from paygkit.device.host.channels.serial_port import SerialPortChannel
from paygkit.device.host.channels.tcp import TcpChannel
from paygkit.device.host.errors import LinkError
from paygkit.device.host.link import DEFAULT_TIMEOUT, DeviceLink
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.simulator import SimulatedDevice

DEFAULT_TCP_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Target:
    """A parsed target: `where` is the state file (sim, may be empty), the host (tcp) or
    the port path or URL (serial)."""

    text: str
    kind: Literal["sim", "tcp", "serial"]
    where: str = ""
    port: int = 0


def parse_target(text: str) -> Target:
    """The target `text` names; LinkError saying how to write one if it names none."""
    text = text.strip()
    if not text:
        raise LinkError("no device given; use sim:, tcp:HOST:PORT, a pty or a serial port path")
    scheme, separator, rest = text.partition(":")
    scheme = scheme.lower() if separator else ""
    if scheme == "sim":
        return Target(text, "sim", rest)
    if scheme == "tcp":
        host, separator, port = rest.rpartition(":")
        if not separator or not port.isdigit() or not 0 < int(port) < 65536:
            raise LinkError(
                f"{text!r} is not a TCP address; write tcp:HOST:PORT (e.g. tcp:127.0.0.1:7878)"
            )
        return Target(text, "tcp", host.strip("[]") or DEFAULT_TCP_HOST, int(port))
    if scheme in ("pty", "serial"):
        if not rest:
            raise LinkError(f"{text!r} names no port; write {scheme}:/dev/ttyUSB0 or similar")
        return Target(text, "serial", rest)
    if "://" not in text and not Path(text).exists():
        raise LinkError(
            f"{text!r} is not a device: no such port; use sim:, tcp:HOST:PORT, or the "
            "path of a serial port or pty (e.g. /dev/ttyUSB0, /dev/pts/5)"
        )
    return Target(text, "serial", text)


def _open_channel(target: Target, timeout: float) -> Channel:
    if target.kind == "tcp":
        return TcpChannel.connect(target.where, target.port, timeout=timeout, target=target.text)
    if target.kind == "serial":
        return SerialPortChannel.open(target.where, target=target.text)
    if target.where:
        try:
            device = SimulatedDevice.open(target.where)
        except Exception as error:
            raise LinkError(f"cannot open the simulator state {target.where}: {error}") from None
    else:
        device = SimulatedDevice()
    return InProcessChannel(CommandInterpreter(device, newline="\r\n"), owned=device)


def open_link(
    target: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Callable[[str], None] | None = None,
) -> DeviceLink:
    """Open a link to a device: `sim:`, `sim:PATH`, `tcp:HOST:PORT`, `pty:PATH` or a path."""
    parsed = parse_target(target)
    channel = _open_channel(parsed, timeout)
    return DeviceLink(channel, parsed.text, timeout=timeout, transcript=transcript)
