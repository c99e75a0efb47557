"""The servers for real (paygkit.device.serve): a pty opened like a serial port, TCP on
127.0.0.1, and stdio through the `paygkit device simulate` command in a subprocess.

Reads wait for an answer with a generous limit only so that a broken server
fails the test instead of hanging it; nothing asserts how long anything takes.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.serve import (
    PtyEndpoint,
    ServeError,
    open_pty,
    serve_pty,
    serve_tcp,
)
from paygkit.device.simulator import SimulatedDevice, sidecar_path
from paygkit.token import DeviceParams, generate
from tests.device.protocol_host import (
    KEY_HEX,
    REFERENCE_SETUP,
    SERIAL,
    STARTING_CODE,
    check_answer,
    is_final,
    parse_line,
)

WAIT = 20.0  # seconds before a missing answer counts as a failure
PARAMS = DeviceParams.create(KEY_HEX, STARTING_CODE)
TOKEN = generate(PARAMS, count=1, days=1).digits


class AnswerReader:
    """Splits a byte stream into answers (lines up to a final OK/ERR line)."""

    def __init__(self, receive: Callable[[], bytes], wait_readable: Callable[[float], bool]):
        self._receive = receive
        self._wait_readable = wait_readable
        self.buffer = b""
        self.raw = b""

    def _fill(self) -> bool:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete answer; received so far: {self.buffer!r}")
            if self._wait_readable(min(left, 0.5)):
                data = self._receive()
                self.raw += data
                self.buffer += data
                return bool(data)

    def answer(self) -> list[str]:
        lines: list[str] = []
        while True:
            while b"\n" in self.buffer:
                raw_line, self.buffer = self.buffer.split(b"\n", 1)
                line = raw_line.decode("ascii").removesuffix("\r")
                if not line:
                    continue
                lines.append(line)
                if is_final(line):
                    return check_answer(lines)
            if not self._fill():
                raise AssertionError(f"the connection closed mid-answer: {lines}")

    def at_end(self) -> bool:
        """True once the other side has closed the stream (and nothing else came)."""
        return not self._fill() and not self.buffer


# --- pty ---------------------------------------------------------------------------------------


def _fd_reader(fd: int) -> AnswerReader:
    return AnswerReader(
        lambda: os.read(fd, 4096), lambda timeout: bool(select.select([fd], [], [], timeout)[0])
    )


class SerialClient:
    """A tool opening the pty's device path like a USB serial port (raw mode)."""

    def __init__(self, path: str | Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.reader = _fd_reader(self.fd)

    def ask(self, line: str, end: bytes = b"\r\n") -> list[str]:
        os.write(self.fd, line.encode("ascii") + end)
        return self.reader.answer()

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def pty_server(tmp_path: Path) -> Iterator[tuple[PtyEndpoint, SimulatedDevice]]:
    sim = SimulatedDevice(RamMemory())
    stop = threading.Event()
    opened: list[PtyEndpoint] = []
    ready = threading.Event()

    def on_ready(endpoint: PtyEndpoint) -> None:
        opened.append(endpoint)
        ready.set()

    thread = threading.Thread(
        target=serve_pty,
        kwargs={
            "interpreter": CommandInterpreter(sim, newline="\r\n"),
            "stop": stop,
            "symlink": tmp_path / "ttyPAYG",
            "ready": on_ready,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(WAIT)
    yield opened[0], sim
    stop.set()
    thread.join(WAIT)
    assert not thread.is_alive(), "the pty server did not stop"


def test_pty_speaks_the_protocol_like_a_serial_device(
    pty_server: tuple[PtyEndpoint, SimulatedDevice], tmp_path: Path
) -> None:
    endpoint, sim = pty_server
    link = tmp_path / "ttyPAYG"
    assert endpoint.path.startswith("/dev/")
    assert os.readlink(link) == endpoint.path
    client = SerialClient(link)
    try:
        hello = client.ask("HELLO")
        assert hello[-1] == "OK HELLO"
        assert parse_line(hello[0])["protocol"] == "1"
        # Answers end with CRLF on a serial line.
        assert b"OK HELLO\r\n" in client.reader.raw
        assert client.ask(REFERENCE_SETUP) == [
            f"SN:{SERIAL}",
            f"SC:{STARTING_CODE:09d}",
            f"SK:{KEY_HEX.upper()}",
            "OK SETUP",
        ]
        result = parse_line(client.ask(f"TOKEN {TOKEN}")[0])
        assert (result.words, result["units"]) == (("APPLIED",), "1")
        # A terminal sends CR alone for Enter.
        status = client.ask("STATUS", end=b"\r")
        assert parse_line(status[0])["seconds_left"] == "86400"
        # QUIT on a serial line keeps it open.
        assert client.ask("QUIT") == ["OK QUIT"]
        assert client.ask("HELLO")[-1] == "OK HELLO"
        # Also when the next command comes in the same write as the QUIT.
        assert client.ask("QUIT\r\nCLOCK") == ["OK QUIT"]
        assert client.reader.answer()[-1] == "OK CLOCK"
    finally:
        client.close()
    # The device path can be opened again; it is the same device.
    again = SerialClient(endpoint.path)
    try:
        status = parse_line(again.ask("STATUS")[0])
        assert (status["serial"], status["count"]) == (SERIAL, "2")
        assert again.ask("KEYS *12")[-1] == "OK KEYS typing=12"
    finally:
        again.close()
    assert sim.status().typing == "12"


def test_pty_commands_split_across_writes(pty_server: tuple[PtyEndpoint, SimulatedDevice]) -> None:
    endpoint, _ = pty_server
    client = SerialClient(endpoint.path)
    try:
        for piece in (b"HE", b"LL", b"O\r", b"\nSTA", b"TUS\r\n"):
            os.write(client.fd, piece)
        assert client.reader.answer()[-1] == "OK HELLO"
        assert client.reader.answer()[-1] == "OK STATUS"
    finally:
        client.close()


def test_pty_with_pyserial(pty_server: tuple[PtyEndpoint, SimulatedDevice]) -> None:
    serial = pytest.importorskip("serial")
    endpoint, _ = pty_server
    port = serial.Serial(endpoint.path, 115200, timeout=WAIT)
    try:
        port.reset_input_buffer()
        port.write(b"HELLO\r\n")
        assert port.readline().startswith(b"HELLO protocol=1 ")
        assert port.readline() == b"OK HELLO\r\n"
    finally:
        port.close()


def test_pty_link_and_descriptors_are_cleaned_up(tmp_path: Path) -> None:
    link = tmp_path / "tty"
    link.symlink_to("/dev/null")  # a stale link from an earlier run is replaced
    with open_pty(link) as endpoint:
        assert os.readlink(link) == endpoint.path
        fds = (endpoint.master_fd, endpoint.slave_fd)
    assert not link.exists()
    assert not link.is_symlink()
    for fd in fds:
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)


def test_pty_never_replaces_a_regular_file(tmp_path: Path) -> None:
    link = tmp_path / "tty"
    link.write_text("precious")
    with pytest.raises(ServeError, match="not a symlink"), open_pty(link):
        pass
    assert link.read_text() == "precious"


# --- TCP ---------------------------------------------------------------------------------------


class TcpClient:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT)
        self.reader = AnswerReader(
            lambda: self.sock.recv(4096),
            lambda timeout: bool(select.select([self.sock], [], [], timeout)[0]),
        )

    def ask(self, line: str) -> list[str]:
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reader.answer()

    def close(self) -> None:
        self.sock.close()


class TcpServer:
    def __init__(self, sim: SimulatedDevice, **options: object) -> None:
        self.stop = threading.Event()
        ready = threading.Event()
        self.address: tuple[str, int] = ("", 0)

        def on_ready(address: tuple[str, int]) -> None:
            self.address = address
            ready.set()

        self.thread = threading.Thread(
            target=serve_tcp,
            kwargs={
                "make_interpreter": lambda: CommandInterpreter(sim, newline="\r\n"),
                "stop": self.stop,
                "ready": on_ready,
                **options,
            },
            daemon=True,
        )
        self.thread.start()
        assert ready.wait(WAIT)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the TCP server did not stop"


@pytest.fixture
def tcp() -> Iterator[tuple[TcpServer, SimulatedDevice]]:
    sim = SimulatedDevice(RamMemory())
    server = TcpServer(sim)
    yield server, sim
    server.close()


def test_tcp_on_localhost_with_an_ephemeral_port(tcp: tuple[TcpServer, SimulatedDevice]) -> None:
    server, _ = tcp
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0
    client = TcpClient(server.address)
    try:
        assert client.ask("HELLO")[-1] == "OK HELLO"
        assert client.ask(REFERENCE_SETUP)[:3] == [
            f"SN:{SERIAL}",
            f"SC:{STARTING_CODE:09d}",
            f"SK:{KEY_HEX.upper()}",
        ]
        assert parse_line(client.ask(f"TOKEN {TOKEN}")[0]).words == ("APPLIED",)
        assert client.ask("NONSENSE")[0].startswith("ERR UNKNOWN_COMMAND ")
        assert client.ask("QUIT") == ["OK QUIT"]
        assert client.reader.at_end()  # the server closed the connection
    finally:
        client.close()


def test_tcp_clients_share_one_device(tcp: tuple[TcpServer, SimulatedDevice]) -> None:
    server, sim = tcp
    first, second = TcpClient(server.address), TcpClient(server.address)
    try:
        first.ask(REFERENCE_SETUP)
        assert parse_line(second.ask("STATUS")[0])["serial"] == SERIAL
        # Several commands in one write are answered in order.
        second.sock.sendall(f"TOKEN {TOKEN}\r\nSTATUS\r\n".encode())
        assert parse_line(second.reader.answer()[0]).words == ("APPLIED",)
        assert parse_line(second.reader.answer()[0])["count"] == "2"
        assert parse_line(first.ask(f"TOKEN {TOKEN}")[0]).words == ("ALREADY_USED",)
        # A client vanishing mid-line does not disturb the others.
        second.sock.sendall(b"STAT")
        second.close()
        assert first.ask("HELLO")[-1] == "OK HELLO"
    finally:
        first.close()
    assert sim.status().count == 2


def test_tcp_refuses_clients_beyond_the_limit() -> None:
    server = TcpServer(SimulatedDevice(RamMemory()), max_clients=1)
    first = TcpClient(server.address)
    try:
        assert first.ask("HELLO")[-1] == "OK HELLO"
        second = TcpClient(server.address)
        try:
            assert second.reader.answer() == ["ERR BUSY too many clients; try again later"]
            assert second.reader.at_end()
        finally:
            second.close()
        assert first.ask("HELLO")[-1] == "OK HELLO"
    finally:
        first.close()
        server.close()


def test_tcp_stop_closes_the_port() -> None:
    server = TcpServer(SimulatedDevice(RamMemory()))
    client = TcpClient(server.address)
    assert client.ask("HELLO")[-1] == "OK HELLO"
    server.close()
    try:
        assert client.reader.at_end()
    finally:
        client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=WAIT).close()


def test_tcp_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match="another port"):
            serve_tcp(
                lambda: CommandInterpreter(SimulatedDevice(RamMemory())),
                port=port,
                stop=threading.Event(),
            )


# --- stdio and the command line ----------------------------------------------------------------


def _paygkit() -> list[str]:
    script = Path(sys.executable).with_name("paygkit")
    if script.exists():
        return [str(script)]
    found = shutil.which("paygkit")
    if found is None:
        pytest.skip("the paygkit console script is not installed")
    return [found]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PAYGKIT_KEY"}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def simulate(
    state: Path, stdin: str, *options: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_paygkit(), "device", "simulate", "--state", str(state), *options],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(**env),
        check=False,
    )


def answers(stdout: str) -> list[list[str]]:
    result: list[list[str]] = [[]]
    for line in stdout.splitlines():
        result[-1].append(line)
        if is_final(line):
            result.append([])
    assert result[-1] == [], f"output ends mid-answer: {stdout!r}"
    return [check_answer(answer) for answer in result[:-1]]


def test_stdio_serves_the_protocol_and_keeps_state_between_runs(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    first = simulate(
        state,
        f"HELLO\n{REFERENCE_SETUP}\nTOKEN {TOKEN}\nADVANCE 2h\nSTATUS\nQUIT\nHELLO\n",
        "--serve",
        "stdio",
    )
    assert first.returncode == 0, first.stderr
    got = answers(first.stdout)
    assert [answer[-1] for answer in got] == [
        "OK HELLO",
        "OK SETUP",
        "OK TOKEN",
        "OK ADVANCE",
        "OK STATUS",
        "OK QUIT",
    ]  # nothing after QUIT is read
    assert got[1][2] == f"SK:{KEY_HEX.upper()}"
    assert parse_line(got[4][0])["seconds_left"] == str(86400 - 7200)
    assert "stdin/stdout" in first.stderr
    assert KEY_HEX not in first.stderr.lower()
    assert [line for line in first.stdout.splitlines() if KEY_HEX in line.lower()] == [
        f"SK:{KEY_HEX.upper()}"
    ]
    assert state.stat().st_size == 1024
    assert sidecar_path(state).exists()

    # A second run: the same device and the same clock, ticks restarted (a power cut).
    second = simulate(state, "STATUS\nCLOCK\n", "--serve", "stdio")  # ends at end of input
    assert second.returncode == 0, second.stderr
    status, clock = answers(second.stdout)
    fields = parse_line(status[0])
    assert (fields["serial"], fields["count"], fields["seconds_left"]) == (
        SERIAL,
        "2",
        str(86400 - 7200),
    )
    assert parse_line(clock[0])["ticks"] == "0"
    assert parse_line(clock[0])["rtc"] == fields["now"]


def test_simulate_sets_up_a_blank_device_from_options(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    run = simulate(
        state,
        "STATUS\nCONFIG\n",
        "--serve",
        "stdio",
        "--serial",
        "OPT1",
        "--starting-code",
        str(STARTING_CODE),
        "--time-divider",
        "2",
        "--no-waiting",
        PAYGKIT_KEY=KEY_HEX,
    )
    assert run.returncode == 0, run.stderr
    status, config = answers(run.stdout)
    fields = parse_line(status[0])
    assert (fields["serial"], fields["divider"], fields["provisioned"]) == ("OPT1", "2", "1")
    assert config[0] == "CONFIG waiting=off tamper=report keypad_timeout=30"
    assert KEY_HEX not in (run.stdout + run.stderr).lower()
    # Set-up options for another device on a device that is set up are refused,
    # and the device is left as it is.
    again = simulate(
        state, "STATUS\n", "--serve", "stdio", "--serial", "OTHER", PAYGKIT_KEY=KEY_HEX
    )
    assert again.returncode == 2, again.stderr
    assert "already holds device OPT1" in again.stderr
    assert "--reset-state" in again.stderr
    kept = simulate(state, "STATUS\n", "--serve", "stdio")
    assert parse_line(answers(kept.stdout)[0][0])["serial"] == "OPT1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--serve", "udp:1"], "--serve"),
        (["--serve", "tcp:70000"], "port number"),
        (["--serial", "X"], "--key"),
        (["--starting-code", "5"], "--serial"),
        (["--serial", "X", "--key", "abc"], "32 hex"),
        (["--serial", "A;B", "--key", KEY_HEX], "serial"),
    ],
)
def test_simulate_refuses_bad_options_in_one_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    run = simulate(tmp_path / "device.bin", "", "--serve", "stdio", *options)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert KEY_HEX not in run.stderr.lower()


def test_one_state_file_serves_one_device_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    first = subprocess.Popen(
        [*_paygkit(), "device", "simulate", "--state", str(state), "--serve", "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert first.stdin is not None
        assert first.stdout is not None
        first.stdin.write(b"HELLO\n")
        first.stdin.flush()
        assert first.stdout.readline().startswith(b"HELLO ")  # the file is open and locked
        second = simulate(state, "HELLO\n", "--serve", "stdio")
        assert second.returncode == 2
        assert "already in use" in second.stderr
        first.stdin.close()
        assert first.wait(WAIT) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def _read_line_from(pipe: int) -> str:
    data = b""
    deadline = time.monotonic() + WAIT
    while not data.endswith(b"\n"):
        assert time.monotonic() < deadline, f"no line: {data!r}"
        if select.select([pipe], [], [], 0.5)[0]:
            chunk = os.read(pipe, 1)
            assert chunk, f"the stream ended: {data!r}"
            data += chunk
    return data.decode()


def test_simulate_serves_tcp_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    process = subprocess.Popen(
        [*_paygkit(), "device", "simulate", "--state", str(state), "--serve", "tcp:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert process.stderr is not None
        line = _read_line_from(process.stderr.fileno())
        assert "127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        client = TcpClient(("127.0.0.1", port))
        try:
            assert client.ask(REFERENCE_SETUP)[-1] == "OK SETUP"
            assert client.ask("ADVANCE 1d")[-1] == "OK ADVANCE"
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    after = simulate(state, "STATUS\n", "--serve", "stdio")
    assert parse_line(answers(after.stdout)[0][0])["serial"] == SERIAL


def test_simulate_serves_a_pty_and_prints_its_path(tmp_path: Path) -> None:
    state, link = tmp_path / "device.bin", tmp_path / "ttyPAYG"
    process = subprocess.Popen(
        [*_paygkit(), "device", "simulate", "--state", str(state), "--serve", f"pty:{link}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        # A background runner may ignore SIGINT, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        path = _read_line_from(process.stdout.fileno()).strip()
        assert path.startswith("/dev/")
        assert os.readlink(link) == path
        client = SerialClient(link)
        try:
            assert client.ask("HELLO")[-1] == "OK HELLO"
            assert client.ask(REFERENCE_SETUP)[0] == f"SN:{SERIAL}"
        finally:
            client.close()
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not link.is_symlink()
