"""A test host for the device protocol: sends command lines, reads answers, parses lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.wire import parse_answer, split_words

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
SERIAL = "TEST220000001"
REFERENCE_SETUP = f"#{SERIAL};{STARTING_CODE:09d};{KEY_HEX}"


@dataclass(frozen=True)
class Line:
    """One answer line as text: its tag, its words without '=', and its name=value fields."""

    tag: str
    words: tuple[str, ...]
    fields: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    def int(self, name: str) -> int:
        return int(self.fields[name])


def parse_line(line: str) -> Line:
    """The text view of an answer line, read by the host's own grammar (paygkit.device.wire)."""
    names = [name for name, _ in split_words(line.partition(" ")[2]) if name is not None]
    assert len(names) == len(set(names)), f"a field twice in {line!r}"
    parsed = parse_answer(line)
    return Line(parsed.tag, parsed.words, parsed.fields)


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
    def over(cls, interpreter: CommandInterpreter) -> Host:
        """A host speaking to an interpreter through its byte-stream interface, with CRLF."""

        def exchange(line: str) -> list[str]:
            out = interpreter.feed(line.encode("ascii") + b"\r\n")
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
