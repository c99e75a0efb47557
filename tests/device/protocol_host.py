"""A test host for the device protocol: sends command lines, reads answers, parses lines."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from paygkit.device.protocol import ProtocolSession

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
SERIAL = "TEST220000001"
REFERENCE_SETUP = f"#{SERIAL};{STARTING_CODE:09d};{KEY_HEX}"


@dataclass(frozen=True)
class Line:
    """One answer line: its tag, its words without '=', and its name=value fields."""

    tag: str
    words: tuple[str, ...]
    fields: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    def int(self, name: str) -> int:
        return int(self.fields[name])


def parse_line(line: str) -> Line:
    parts = shlex.split(line)
    words: list[str] = []
    fields: dict[str, str] = {}
    for part in parts[1:]:
        name, separator, value = part.partition("=")
        if separator:
            assert name not in fields, f"field {name} twice in {line!r}"
            fields[name] = value
        else:
            words.append(part)
    return Line(parts[0], tuple(words), fields)


def is_final(line: str) -> bool:
    return line == "OK" or line.startswith(("OK ", "ERR "))


def check_answer(lines: list[str]) -> list[str]:
    """An answer is information lines and exactly one final line, at the end."""
    assert lines, "a command got no answer"
    assert is_final(lines[-1]), f"the answer does not end with OK/ERR: {lines}"
    assert not any(is_final(line) for line in lines[:-1]), f"two final lines: {lines}"
    return lines


class Host:
    """Drives a device through protocol lines only (over any `exchange` function)."""

    def __init__(self, exchange: Callable[[str], list[str]]) -> None:
        self.exchange = exchange
        self.transcript: list[str] = []

    @classmethod
    def over(cls, session: ProtocolSession) -> Host:
        """A host speaking to a session through its byte-stream interface, with CRLF."""

        def exchange(line: str) -> list[str]:
            out = session.feed(line.encode("ascii") + b"\r\n")
            return out.decode("ascii").splitlines()

        return cls(exchange)

    def send(self, line: str) -> list[str]:
        lines = check_answer(self.exchange(line))
        self.transcript += [f"> {line}", *(f"< {answer}" for answer in lines)]
        return lines

    def ok(self, line: str) -> list[str]:
        lines = self.send(line)
        assert lines[-1].startswith("OK"), f"{line!r} failed: {lines}"
        return lines

    def err(self, line: str, code: str) -> str:
        lines = self.send(line)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"ERR {code} "), f"{line!r}: expected ERR {code}, got {lines}"
        return lines[0]

    def one(self, line: str, tag: str) -> Line:
        """The single `tag` line of the answer to `line`."""
        found = [parse_line(answer) for answer in self.ok(line) if answer.startswith(tag + " ")]
        assert len(found) == 1, f"expected one {tag} line for {line!r}: {found}"
        return found[0]

    def token(self, digits: str) -> Line:
        return self.one(f"TOKEN {digits}", "RESULT")

    def keys(self, keys: str) -> list[Line]:
        return [parse_line(answer) for answer in self.ok(f"KEYS {keys}")[:-1]]

    def status(self) -> Line:
        return self.one("STATUS", "STATUS")
