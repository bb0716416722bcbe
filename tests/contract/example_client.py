"""Holds docs/examples/chat_client.py to what docs/building.md says of it, against real servers: a
message sent by REST arrives; then the server restarts on the same data directory while the
client is kept from reconnecting (it reaches the server through a proxy here that refuses new
connections meanwhile), a message is sent while it is away, and that message arrives after the
reconnect exactly once, and so does one sent after it; nothing else arrives, nothing twice.

    CHATD_BIN=target/debug/chatd python example_client.py   (websockets installed)

The server's configuration comes from the CHATD_* variables this inherits.
"""

import asyncio
import json
import os
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "docs" / "examples" / "chat_client.py"
BIN = str(Path(os.environ.get("CHATD_BIN", ROOT / "target" / "debug" / "chatd")).resolve())
PASSWORD = "example-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`chatd serve` on a fixed port and data directory, so that it can be restarted on both."""

    def __init__(self, work: Path) -> None:
        self.work, self.port = work, free_port()
        self.data = work / "data"
        self.data.mkdir()
        self.process: asyncio.subprocess.Process | None = None
        self.log = open(work / "server.log", "ab")

    async def start(self) -> None:
        env = dict(os.environ, CHATD_LISTEN=f"127.0.0.1:{self.port}", CHATD_DATA_DIR=str(self.data))
        self.process = await asyncio.create_subprocess_exec(
            BIN, "serve", cwd=self.work, env=env, stdout=self.log, stderr=self.log
        )
        for _ in range(150):
            try:
                await rest("GET", self.port, "/api/ready")
                return
            except OSError:
                if self.process.returncode is not None:
                    raise RuntimeError(f"chatd exited: {(self.work / 'server.log').read_text()}")
                await asyncio.sleep(0.2)
        raise RuntimeError("chatd did not become ready")

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class Proxy:
    """Forwards TCP to the server; while `open` is false it closes new connections at once."""

    def __init__(self, target: int) -> None:
        self.target, self.open = target, True
        self.port = 0

    async def start(self) -> None:
        server = await asyncio.start_server(self.accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.open:
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def rest(method: str, port: int, path: str, body: Any = None, token: str | None = None) -> Any:
    def call() -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    return await asyncio.to_thread(call)


class Lines:
    """The lines a stream prints, collected as they come."""

    def __init__(self, stream: asyncio.StreamReader, echo: str) -> None:
        self.lines: list[str] = []
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self.read(stream, echo))

    async def read(self, stream: asyncio.StreamReader, echo: str) -> None:
        while line := await stream.readline():
            text = line.decode().rstrip("\n")
            print(f"  {echo}: {text}")
            self.lines.append(text)
            self.changed.set()

    async def wait_for(self, what: str, test: Any, seconds: float) -> None:
        async def until() -> None:
            while not any(test(line) for line in self.lines):
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(until(), seconds)
        except TimeoutError:
            raise AssertionError(f"{what}: not within {seconds} s") from None


async def check(work: Path) -> None:
    server = Server(work)
    await server.start()
    alice, bob = "ex_alice", "ex_bob"
    for name in (alice, bob):
        await rest("POST", server.port, "/api/signup", {"username": name, "password": PASSWORD})
    token = (await rest("POST", server.port, "/api/signin", {"username": alice, "password": PASSWORD}))["access_token"]
    proxy = Proxy(server.port)
    await proxy.start()

    async def send(text: str) -> int:
        message = await rest("POST", server.port, f"/api/messages/{bob}", {"body": text, "client_id": text}, token)
        return int(message["id"])

    client = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), f"http://127.0.0.1:{proxy.port}", bob,
        env=dict(os.environ, CHATD_PASSWORD=PASSWORD), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert client.stdout and client.stderr
    out, err = Lines(client.stdout, "client stdout"), Lines(client.stderr, "client stderr")
    connections = lambda: sum("connected as" in line for line in err.lines)  # noqa: E731
    bodies = lambda: [json.loads(line)["body"] for line in out.lines]  # noqa: E731
    try:
        await err.wait_for("the client connects", lambda line: "connected as" in line, 15)
        await send("live")
        await out.wait_for("a message sent while connected arrives", lambda line: '"live"' in line, 10)

        print("  restarting the server; the client cannot reconnect until the message is sent")
        proxy.open = False
        await server.stop()
        await err.wait_for("the client sees the socket close", lambda line: "disconnected" in line, 10)
        await server.start()
        missed = await send("while away")
        await asyncio.sleep(1.5)  # the client keeps trying, and failing, meanwhile
        assert connections() == 1, "the client could not have reconnected"
        assert "while away" not in bodies(), "it cannot have arrived yet"
        proxy.open = True

        await out.wait_for("the message sent while away arrives", lambda line: '"while away"' in line, 40)
        assert connections() == 2, f"one reconnect: {err.lines}"
        after = await send("after")
        await out.wait_for("a message sent after the reconnect arrives", lambda line: '"after"' in line, 10)
        await asyncio.sleep(1)  # time for anything doubled to show
        assert bodies() == ["live", "while away", "after"], f"each message once, in order: {bodies()}"
        ids = [json.loads(line)["id"] for line in out.lines]
        assert ids == sorted(ids) and missed in ids and after in ids, f"ids {ids}"
        print("example client: every message arrived exactly once across a server restart")
    finally:
        client.terminate()
        await client.wait()
        await server.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        try:
            asyncio.run(check(Path(work)))
        except AssertionError as failure:
            print(f"example client FAILED: {failure}", file=sys.stderr)
            print((Path(work) / "server.log").read_text()[-3000:], file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
