"""The host side of the device protocol (docs/device-protocol.md): open a link, send, read.

`open_link(target)` connects to a device and returns a `DeviceLink`, which
sends one command line at a time and reads its answer up to the final `OK` /
`ERR` line.  Factory flashing and certification drive devices only through
it.  The modules: `targets` (what `open_link` takes), `channels` (the byte
pipes: in-process, TCP, serial port), `link` (commands, answers, timeouts),
`errors`.  Answer lines are the typed lines of `paygkit.device.wire`.

Keys never leave the host side in a message, a repr or the transcript: the
`SK:` line and the `key=` argument are shown as `<hidden>`.
"""

from paygkit.device.host.channels.serial_port import BAUD_RATE
from paygkit.device.host.errors import DeviceError, LinkError, LinkTimeoutError
from paygkit.device.host.link import DEFAULT_TIMEOUT, Answer, DeviceLink, ReadBack
from paygkit.device.host.targets import Target, open_link, parse_target
from paygkit.device.wire import AnswerLine

__all__ = [
    "BAUD_RATE",
    "DEFAULT_TIMEOUT",
    "Answer",
    "AnswerLine",
    "DeviceError",
    "DeviceLink",
    "LinkError",
    "LinkTimeoutError",
    "ReadBack",
    "Target",
    "open_link",
    "parse_target",
]
