"""A minimal chatd client: signs in, prints every message it receives as a JSON line, and keeps
reconnecting with backoff, catching up with `sync` so that nothing is lost or printed twice.

    pip install websockets
    CHATD_PASSWORD=... python chat_client.py http://localhost:3000 alice
"""
import asyncio, json, os, random, sys, urllib.request

import websockets


def sign_in(base: str, username: str, password: str) -> str:
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(f"{base}/api/signin", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


async def run(base: str, username: str, password: str) -> None:
    token, held, delay = None, None, 0.5  # held: the stream id up to which we hold everything
    while True:
        try:
            token = token or await asyncio.to_thread(sign_in, base, username, password)
            async with websockets.connect(base.replace("http", "ws", 1) + "/ws") as ws:
                await ws.send(json.dumps({"type": "auth", "token": token}))
                synced, pending = False, set()  # ids seen above `held` before this socket's sync_done
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "ready":
                        print(f"connected as {frame['username']}", file=sys.stderr, flush=True)
                        delay = 0.5
                        if held is None:  # the first start: messages from now on
                            held, synced = frame["last_id"], True
                        else:
                            await ws.send(json.dumps({"type": "sync", "after": held}))
                    elif frame["type"] == "error" and not synced:  # sync refused (rate_limited): ask again
                        await asyncio.sleep(1)
                        await ws.send(json.dumps({"type": "sync", "after": held}))
                    elif frame["type"] == "sync_done":
                        held, synced = max(frame["last_id"], held, *pending), True
                        pending.clear()
                    elif frame["type"] == "receive_message" or "created_at" in frame:  # a message or an event
                        entry = frame.get("message", frame)
                        if entry["id"] <= held or entry["id"] in pending:
                            continue  # had it already (an entry can come twice across a reconnect)
                        if synced:
                            held = entry["id"]  # live entries come in id order
                        else:
                            pending.add(entry["id"])
                        if frame["type"] == "receive_message":
                            print(json.dumps(entry), flush=True)
        except websockets.ConnectionClosed as closed:
            if closed.rcvd and closed.rcvd.code == 4401:
                token = None  # expired or signed out: sign in again
        except (OSError, websockets.InvalidHandshake):
            pass  # the server is down or restarting
        print(f"disconnected; retrying in up to {delay:.1f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(delay * random.uniform(0.5, 1))
        delay = min(delay * 2, 30)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1].rstrip("/"), sys.argv[2], os.environ["CHATD_PASSWORD"]))
