"""The device protocol on the wire (docs/device-protocol.md): lines, values and answer lines.

The one grammar of both sides.  The device writes its answers with these
classes and a host reads them back with the same ones, so a value is written
and read by one pair of functions (`Codec`), a quoted text is escaped and
unescaped by one rule, and a byte stream is cut into lines by one splitter
(`LineSplitter`) with the limits of section 1.

An answer line is `TAG [words] name=value ...` (or the reference read-back
`SN:value`); each tag the protocol defines is a frozen dataclass whose
attributes are the typed values of its fields.  A field a device left out is
None.  A line with a tag the protocol does not define is an `OtherLine`; a
line with a defined tag whose values do not read is a `BadLine` carrying the
problem, so that a host fails only when it needs that line.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, ClassVar, Generic, TypeVar

from paygkit.device.firmware import OutcomeKind
from paygkit.device.ports import FeedbackKind, Led
from paygkit.device.state import TamperFlag, TamperResponse
from paygkit.token import HIDDEN, TokenType, hide_keys

PROTOCOL_VERSION = 1
# A command line, without its line end (section 1): what a device buffers.
MAX_COMMAND_LENGTH = 256
# An answer line, without its line end: a longer one is not the protocol.
MAX_ANSWER_LENGTH = 1024

_LINE_ENDS = frozenset(b"\r\n")
_BACKSPACES = frozenset({0x08, 0x7F})
_READ_BACK = re.compile(r"([A-Za-z]+):(.*)")


class WireError(ValueError):
    """A line that does not follow the grammar; the message never repeats a key."""


class ErrorCode(enum.Enum):
    """The codes of `ERR` lines (section 5)."""

    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    BAD_ARGUMENT = "BAD_ARGUMENT"
    BAD_LINE = "BAD_LINE"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    ALREADY_PROVISIONED = "ALREADY_PROVISIONED"
    POWERED_OFF = "POWERED_OFF"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    STORAGE = "STORAGE"
    INTERNAL = "INTERNAL"
    BUSY = "BUSY"


class Unlimited(enum.Enum):
    """`seconds_left=unlimited`: PAYG is disabled."""

    UNLIMITED = "unlimited"


UNLIMITED = Unlimited.UNLIMITED


# --- lines in a byte stream --------------------------------------------------------------------


class Cut(enum.Enum):
    """Stands for a line that was longer than the limit: its bytes are gone."""

    TOO_LONG = "too long"


class LineSplitter:
    """Cuts a byte stream into lines at LF, CR or CRLF (an empty line between CR and LF).

    A line longer than `limit` is dropped up to its end and comes out as
    `Cut.TOO_LONG`, so a stream without line ends never fills memory.  With
    `editing`, backspace and DEL delete the previous byte of the line, for a
    person typing at a serial terminal.
    """

    def __init__(self, limit: int, *, editing: bool = False) -> None:
        self.limit = limit
        self.editing = editing
        self._partial = bytearray()
        self._cutting = False
        self._lines: collections.deque[bytes | Cut] = collections.deque()

    @property
    def cutting(self) -> bool:
        """True while inside a line that is already too long, before its end arrived."""
        return self._cutting

    def feed(self, data: bytes) -> None:
        for byte in data:
            if byte in _LINE_ENDS:
                self._lines.append(Cut.TOO_LONG if self._cutting else bytes(self._partial))
                self._cutting = False
                self._partial.clear()
            elif self._cutting:
                continue
            elif self.editing and byte in _BACKSPACES:
                if self._partial:
                    self._partial.pop()
            else:
                self._partial.append(byte)
                if len(self._partial) > self.limit:
                    self._cutting = True
                    self._partial.clear()

    def next_line(self) -> bytes | Cut | None:
        """The next complete line (without its end), or None until one is complete."""
        return self._lines.popleft() if self._lines else None

    def clear(self) -> None:
        self._lines.clear()
        self._partial.clear()
        self._cutting = False


# --- values ------------------------------------------------------------------------------------

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class Codec(Generic[T]):
    """How one kind of value is written in a field, and read back."""

    def __init__(self, what: str, write: Callable[[T], str], read: Callable[[str], T]) -> None:
        self.what = what
        self.write = write
        self._read = read

    def read(self, text: str) -> T:
        """The value of `text`; ValueError if it is not `what` this codec reads."""
        return self._read(text)


def _read_number(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text)


def _reader(table: Mapping[str, T]) -> Callable[[str], T]:
    def read(text: str) -> T:
        return table[text]  # KeyError is a LookupError, turned into WireError by the caller

    return read


def _by_name(kind: type[E]) -> Codec[E]:
    """An enum written as its upper-case name (outcomes, token types)."""
    names = ", ".join(member.name for member in kind)
    return Codec(f"one of {names}", lambda member: member.name, _reader(kind.__members__))


def _by_value(kind: type[E]) -> Codec[E]:
    """An enum written as its value (event kinds, tamper responses)."""
    table = {str(member.value): member for member in kind}
    return Codec(f"one of {', '.join(table)}", lambda member: str(member.value), _reader(table))


def _write_tamper(flags: TamperFlag) -> str:
    names = [flag.name.lower() for flag in TamperFlag if flag and flag in flags and flag.name]
    return ",".join(names) or "none"


def _read_tamper(text: str) -> TamperFlag:
    flags = TamperFlag.NONE
    if text != "none":
        for name in text.split(","):
            flags |= TamperFlag[name.upper()]
    return flags


def _write_counts(counts: tuple[int, ...]) -> str:
    return ",".join(str(count) for count in counts) or "-"


def _read_counts(text: str) -> tuple[int, ...]:
    return () if text == "-" else tuple(_read_number(part) for part in text.split(","))


def _write_seconds_left(value: int | Unlimited) -> str:
    return value.value if isinstance(value, Unlimited) else str(value)


def _read_seconds_left(text: str) -> int | Unlimited:
    return UNLIMITED if text == UNLIMITED.value else _read_number(text)


def _read_led(text: str) -> Led | None:
    return None if text == "none" else Led(text)


def quote(text: str) -> str:
    """A text value: printable ASCII in double quotes, `"` and `\\` escaped, others as `?`."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_quoted(text: str) -> str:
    value = _unquote(text, 0)
    if value is None or value[1] != len(text):
        raise ValueError(text)
    return value[0]


def _unquote(text: str, start: int) -> tuple[str, int] | None:
    """The quoted text starting at `start` (a `"`) and the index after it; None if unclosed."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    return None


NUMBER: Codec[int] = Codec("a whole number", str, _read_number)
FLAG: Codec[bool] = Codec(
    "0 or 1", lambda value: "1" if value else "0", _reader({"1": True, "0": False})
)
ON_OFF: Codec[bool] = Codec(
    "on or off", lambda value: "on" if value else "off", _reader({"on": True, "off": False})
)
WORD: Codec[str] = Codec("a word", str, str)
# Serials, test codes and typed digits: "-" on the wire is the empty text.
OPTIONAL_WORD: Codec[str] = Codec(
    "a word or -", lambda value: value or "-", lambda text: "" if text == "-" else text
)
COUNTS: Codec[tuple[int, ...]] = Codec(
    "counts separated by commas, or -", _write_counts, _read_counts
)
SECONDS_LEFT: Codec[int | Unlimited] = Codec(
    "a whole number or unlimited", _write_seconds_left, _read_seconds_left
)
TAMPER: Codec[TamperFlag] = Codec(
    "none or tamper flags separated by commas", _write_tamper, _read_tamper
)
LED: Codec[Led | None] = Codec(
    "red, green or none", lambda led: "none" if led is None else led.value, _read_led
)
TEXT: Codec[str] = Codec("a quoted text", quote, _read_quoted)
OUTCOME = _by_name(OutcomeKind)
TOKEN_TYPE = _by_name(TokenType)
EVENT_KIND = _by_value(FeedbackKind)
TAMPER_RESPONSE = _by_value(TamperResponse)


def format_tamper(flags: TamperFlag) -> str:
    """Tamper flags as `STATUS` shows them: `none`, or `rtc_slow,rtc_backwards`."""
    return TAMPER.write(flags)


# --- words of a line ---------------------------------------------------------------------------


def _as_written(value: str) -> str:
    """A field's value for a person: a quoted text without its quotes and escapes."""
    try:
        return _read_quoted(value) if value.startswith('"') else value
    except ValueError:
        return value


def split_words(text: str) -> list[tuple[str | None, str]]:
    """The words of a line after its tag, as (name, value) for `name=value`, (None, word) else.

    A value that starts with `"` runs to its closing quote, spaces included;
    without a closing quote it is an ordinary word.  Names are lower-cased.
    """
    words: list[tuple[str | None, str]] = []
    index = 0
    while index < len(text):
        if text[index] == " ":
            index += 1
            continue
        end = text.find(" ", index)
        end = len(text) if end < 0 else end
        word = text[index:end]
        name, separator, value = word.partition("=")
        if not (separator and name):
            words.append((None, word))
            index = end
            continue
        if value.startswith('"'):
            start = index + len(name) + 1
            quoted = _unquote(text, start)
            if quoted is not None:
                words.append((name.lower(), text[start : quoted[1]]))
                index = quoted[1]
                continue
        words.append((name.lower(), value))
        index = end
    return words


def shown(line: str) -> str:
    """A command or answer line as it may be logged or shown: every key hidden.

    Hides the `SK:` read-back, `key=` arguments, the key field of the
    reference setup line `#serial;code;key`, and any other run of hex shaped
    like a key.
    """
    if line[:3].upper() == "SK:":
        return "SK:" + HIDDEN
    line = re.sub(r"(?i)\bkey=\S*", "key=" + HIDDEN, line)
    if line.startswith("#") and line.count(";") >= 2:
        head, _, _ = line.rpartition(";")
        line = f"{head};{HIDDEN}"
    return hide_keys(line)


# --- answer lines ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
    codec: Codec[Any]
    positional: bool
    # Written even when None, as the codec writes None (`led=none`); other fields are
    # left out when None.
    always: bool


def _wire(codec: Codec[Any], *, positional: bool = False, always: bool = False) -> dict[str, _Spec]:
    """Metadata making a dataclass field a field of the line (`name=value`, or a word)."""
    return {"wire": _Spec(codec, positional, always)}


L = TypeVar("L", bound="AnswerLine")


@dataclasses.dataclass(frozen=True)
class AnswerLine:
    """One answer line.  `raw` is the line as received (empty for a line made to be sent).

    Besides its typed attributes every line has the view a person reads:
    `tag`, `words` (without '='), `fields` (name -> value as written), for
    showing a line and for lines of tags a host does not know.
    """

    TAG: ClassVar[str] = ""
    raw: str = dataclasses.field(default="", kw_only=True, compare=False, repr=False)

    # -- writing and reading --------------------------------------------------------------

    def format(self) -> str:
        """The line as the device writes it."""
        parts = [self.TAG]
        for item in dataclasses.fields(self):
            spec = item.metadata.get("wire")
            value = getattr(self, item.name)
            if spec is None or (value is None and not spec.always):
                continue
            text = spec.codec.write(value)
            parts.append(text if spec.positional else f"{item.name}={text}")
        return " ".join(parts)

    @classmethod
    def parse(cls, raw: str) -> AnswerLine:
        """The line `raw` (stripped) as the class of its tag; never raises."""
        return parse_answer(raw)

    @classmethod
    def _read(cls: type[L], raw: str, rest: str) -> L:
        """The line of this class whose text after the tag is `rest`; WireError if it is not."""
        words = split_words(rest)
        positional = iter(value for name, value in words if name is None)
        named = {name: value for name, value in words if name is not None}
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            spec = item.metadata.get("wire")
            if spec is None:
                continue
            text = next(positional, None) if spec.positional else named.get(item.name)
            if text is None:
                continue
            try:
                values[item.name] = spec.codec.read(text)
            except (ValueError, LookupError):
                raise WireError(
                    f"the device's {cls.TAG} line has {item.name} {hide_keys(text)!r}, not "
                    f"{spec.codec.what}: {shown(raw)!r}; is it a paygkit protocol device?"
                ) from None
        return cls(**values, raw=raw)

    # -- the view of a person -------------------------------------------------------------

    @property
    def line_text(self) -> str:
        """The line as received, or as it will be written."""
        return self.raw or self.format()

    def _view(self) -> tuple[str, tuple[str, ...], dict[str, str]]:
        text = self.line_text
        read_back = _READ_BACK.fullmatch(text)
        if read_back is not None:
            return read_back.group(1).upper(), (read_back.group(2).strip(),), {}
        tag, _, rest = text.partition(" ")
        words: list[str] = []
        fields: dict[str, str] = {}
        for name, value in split_words(rest):
            if name is None:
                words.append(value)
            else:
                fields[name] = _as_written(value)
        return tag.upper(), tuple(words), fields

    @property
    def tag(self) -> str:
        return self.TAG or self._view()[0]

    @property
    def words(self) -> tuple[str, ...]:
        return self._view()[1]

    @property
    def fields(self) -> dict[str, str]:
        return self._view()[2]

    @property
    def value(self) -> str:
        """The first word: the outcome of a RESULT line, the value of an `SN:` line."""
        words = self.words
        return words[0] if words else ""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The field `name` as written on the line."""
        return self.fields.get(name, default)

    def int(self, name: str) -> int:
        """The field `name` as a whole number; WireError if it is missing or not one."""
        value = self.fields.get(name)
        try:
            if value is not None:
                return NUMBER.read(value)
        except ValueError:
            pass
        problem = "missing" if value is None else f"{value!r}, not {NUMBER.what}"
        raise WireError(
            f"the device's {self.tag} line has {name} {problem}: {shown(self.line_text)!r}; "
            "is it a paygkit protocol device?"
        )

    def __str__(self) -> str:
        return shown(self.line_text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({shown(self.line_text)!r})"


@dataclasses.dataclass(frozen=True, repr=False)
class OtherLine(AnswerLine):
    """A line of a tag the protocol does not define (hosts skip such lines)."""

    def format(self) -> str:
        return self.raw


@dataclasses.dataclass(frozen=True, repr=False)
class BadLine(AnswerLine):
    """A line of a defined tag whose values do not read; `problem` says which."""

    problem: str = ""

    def format(self) -> str:
        return self.raw


@dataclasses.dataclass(frozen=True, repr=False)
class OkLine(AnswerLine):
    """The final line of an answer that worked: `OK <COMMAND>` (KEYS adds `typing=`)."""

    TAG = "OK"
    command: str | None = field(default=None, metadata=_wire(WORD, positional=True))
    typing: str | None = field(default=None, metadata=_wire(OPTIONAL_WORD))


@dataclasses.dataclass(frozen=True, repr=False)
class ErrLine(AnswerLine):
    """The final line of a refused command: `ERR <code> <message>`."""

    TAG = "ERR"
    code: str = ""  # text: a newer device may send codes this paygkit does not know
    message: str = ""

    @property
    def error_code(self) -> ErrorCode | None:
        """The code as an `ErrorCode`; None for a code not in section 5."""
        return ErrorCode.__members__.get(self.code)

    def format(self) -> str:
        return f"ERR {self.code} {self.message}".rstrip()

    @classmethod
    def _read(cls, raw: str, rest: str) -> ErrLine:
        code, _, message = rest.strip().partition(" ")
        return cls(code, message.strip(), raw=raw)


@dataclasses.dataclass(frozen=True, repr=False)
class HelloLine(AnswerLine):
    TAG = "HELLO"
    protocol: int | None = field(default=None, metadata=_wire(NUMBER))
    model: str | None = field(default=None, metadata=_wire(WORD))
    firmware: str | None = field(default=None, metadata=_wire(WORD))
    simulator: bool | None = field(default=None, metadata=_wire(FLAG))
    power: bool | None = field(default=None, metadata=_wire(ON_OFF))
    provisioned: bool | None = field(default=None, metadata=_wire(FLAG))


@dataclasses.dataclass(frozen=True, repr=False)
class HelpLine(AnswerLine):
    TAG = "HELP"
    syntax: str = ""

    def format(self) -> str:
        return f"HELP {self.syntax}".rstrip()

    @classmethod
    def _read(cls, raw: str, rest: str) -> HelpLine:
        return cls(rest.strip(), raw=raw)


@dataclasses.dataclass(frozen=True, repr=False)
class SerialReadBack(AnswerLine):
    """`SN:<serial>`: the serial as the device stored it."""

    TAG = "SN"
    serial: str = ""

    def format(self) -> str:
        return f"SN:{self.serial}"

    @classmethod
    def _read(cls, raw: str, rest: str) -> SerialReadBack:
        return cls(rest.strip(), raw=raw)


@dataclasses.dataclass(frozen=True, repr=False)
class CodeReadBack(AnswerLine):
    """`SC:<9 digits>`: the starting code as the device stored it."""

    TAG = "SC"
    starting_code: int = 0

    def format(self) -> str:
        return f"SC:{self.starting_code:09d}"

    @classmethod
    def _read(cls, raw: str, rest: str) -> CodeReadBack:
        code = rest.strip()
        if not code.isascii() or not code.isdigit():
            raise WireError(f"the SC: line holds {hide_keys(code)!r}, not a starting code")
        return cls(int(code), raw=raw)


@dataclasses.dataclass(frozen=True, repr=False)
class KeyReadBack(AnswerLine):
    """`SK:<32 hex>`: the key as the device stored it, upper case; the only line with a key."""

    TAG = "SK"
    key: bytes = dataclasses.field(default=b"", repr=False)

    def format(self) -> str:
        return f"SK:{self.key.hex().upper()}"

    @classmethod
    def _read(cls, raw: str, rest: str) -> KeyReadBack:
        try:
            return cls(bytes.fromhex(rest.strip()), raw=raw)
        except ValueError:
            raise WireError("the SK: line does not hold a key in hex") from None


@dataclasses.dataclass(frozen=True, repr=False)
class SetupLine(AnswerLine):
    """The settings a `SETUP` stored besides the three read-back lines."""

    TAG = "SETUP"
    divider: int | None = field(default=None, metadata=_wire(NUMBER))
    restricted: bool | None = field(default=None, metadata=_wire(FLAG))
    test: str | None = field(default=None, metadata=_wire(OPTIONAL_WORD))
    count: int | None = field(default=None, metadata=_wire(NUMBER))


@dataclasses.dataclass(frozen=True, repr=False)
class ResultLine(AnswerLine):
    """What a token did (section 4.1); which fields are there depends on the outcome."""

    TAG = "RESULT"
    outcome: OutcomeKind | None = field(default=None, metadata=_wire(OUTCOME, positional=True))
    type: TokenType | None = field(default=None, metadata=_wire(TOKEN_TYPE))
    units: int | None = field(default=None, metadata=_wire(NUMBER))
    count: int | None = field(default=None, metadata=_wire(NUMBER))
    payg: bool | None = field(default=None, metadata=_wire(ON_OFF))
    test: bool | None = field(default=None, metadata=_wire(FLAG))
    active: bool | None = field(default=None, metadata=_wire(FLAG))
    active_until: int | None = field(default=None, metadata=_wire(NUMBER))
    seconds_left: int | Unlimited | None = field(default=None, metadata=_wire(SECONDS_LEFT))
    wait: int | None = field(default=None, metadata=_wire(NUMBER))
    invalid: int | None = field(default=None, metadata=_wire(NUMBER))
    text: str | None = field(default=None, metadata=_wire(TEXT))


@dataclasses.dataclass(frozen=True, repr=False)
class StatusLine(AnswerLine):
    """The state of the device (section 4.2)."""

    TAG = "STATUS"
    serial: str | None = field(default=None, metadata=_wire(OPTIONAL_WORD))
    provisioned: bool | None = field(default=None, metadata=_wire(FLAG))
    now: int | None = field(default=None, metadata=_wire(NUMBER))
    active: bool | None = field(default=None, metadata=_wire(FLAG))
    payg: bool | None = field(default=None, metadata=_wire(ON_OFF))
    seconds_left: int | Unlimited | None = field(default=None, metadata=_wire(SECONDS_LEFT))
    active_until: int | None = field(default=None, metadata=_wire(NUMBER))
    count: int | None = field(default=None, metadata=_wire(NUMBER))
    used: tuple[int, ...] | None = field(default=None, metadata=_wire(COUNTS))
    invalid: int | None = field(default=None, metadata=_wire(NUMBER))
    blocked: int | None = field(default=None, metadata=_wire(NUMBER))
    tamper: TamperFlag | None = field(default=None, metadata=_wire(TAMPER))
    test: bool | None = field(default=None, metadata=_wire(FLAG))
    typing: str | None = field(default=None, metadata=_wire(OPTIONAL_WORD))
    restricted: bool | None = field(default=None, metadata=_wire(FLAG))
    divider: int | None = field(default=None, metadata=_wire(NUMBER))


@dataclasses.dataclass(frozen=True, repr=False)
class EventLine(AnswerLine):
    """Feedback the device gave, with its LED pattern (section 4.3)."""

    TAG = "EVENT"
    kind: FeedbackKind | None = field(default=None, metadata=_wire(EVENT_KIND, positional=True))
    led: Led | None = field(default=None, metadata=_wire(LED, always=True))
    blinks: int | None = field(default=None, metadata=_wire(NUMBER))
    text: str | None = field(default=None, metadata=_wire(TEXT))


@dataclasses.dataclass(frozen=True, repr=False)
class ClockLine(AnswerLine):
    TAG = "CLOCK"
    rtc: int | None = field(default=None, metadata=_wire(NUMBER))
    ticks: int | None = field(default=None, metadata=_wire(NUMBER))


@dataclasses.dataclass(frozen=True, repr=False)
class ConfigLine(AnswerLine):
    TAG = "CONFIG"
    waiting: bool | None = field(default=None, metadata=_wire(ON_OFF))
    tamper: TamperResponse | None = field(default=None, metadata=_wire(TAMPER_RESPONSE))
    keypad_timeout: int | None = field(default=None, metadata=_wire(NUMBER))


@dataclasses.dataclass(frozen=True, repr=False)
class PowerLine(AnswerLine):
    TAG = "POWER"
    on: bool | None = field(default=None, metadata=_wire(ON_OFF, positional=True))


_CLASSES: dict[str, type[AnswerLine]] = {
    line.TAG: line
    for line in (
        OkLine,
        ErrLine,
        HelloLine,
        HelpLine,
        SerialReadBack,
        CodeReadBack,
        KeyReadBack,
        SetupLine,
        ResultLine,
        StatusLine,
        EventLine,
        ClockLine,
        ConfigLine,
        PowerLine,
    )
}
_READ_BACK_TAGS = frozenset({"SN", "SC", "SK"})


def parse_answer(raw: str) -> AnswerLine:
    """The answer line `raw` as the class of its tag: `OtherLine` for a tag the protocol does
    not define, `BadLine` for a defined tag whose values do not read.  Never raises."""
    raw = raw.strip()
    read_back = _READ_BACK.fullmatch(raw)
    if read_back is not None:
        tag, rest = read_back.group(1).upper(), read_back.group(2)
        if tag not in _READ_BACK_TAGS:
            return OtherLine(raw=raw)
    else:
        tag, _, rest = raw.partition(" ")
        tag = tag.upper()
        if tag in _READ_BACK_TAGS:
            return OtherLine(raw=raw)
    kind = _CLASSES.get(tag)
    if kind is None:
        return OtherLine(raw=raw)
    try:
        return kind._read(raw, rest)
    except WireError as error:
        return BadLine(problem=str(error), raw=raw)


def is_final(line: AnswerLine) -> bool:
    """True for the line that ends an answer, `OK ...` or `ERR ...`."""
    return line.tag in ("OK", "ERR")
