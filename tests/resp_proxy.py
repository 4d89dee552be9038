"""A TCP proxy in front of a real Redis that can answer its clients' write commands with an error
reply, as a Redis would: for the replies a test cannot make a real server give on demand
(``LOADING`` while a large dataset loads, ``TRYAGAIN`` while a cluster moves slots). Everything
else goes to the real server and back unchanged; inside MULTI, an injected error aborts the
transaction at EXEC (``EXECABORT``), as Redis does with a command refused while queuing.

The client under test is the real one (redis-py), over a real socket: only the server's answer
to a write is replaced.
"""

from __future__ import annotations

import asyncio
import threading

from services.common.embedded import free_port

WRITES = frozenset(
    b"EVAL EVALSHA HSET HSETNX HDEL HINCRBY SET SETEX SETNX DEL UNLINK LPUSH RPUSH LTRIM LREM "
    b"INCR INCRBY ZADD ZREM ZREMRANGEBYSCORE EXPIRE PEXPIRE".split()
)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One whole RESP reply (or request), raw."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        n = int(rest)
        return line if n < 0 else line + await reader.readexactly(n + 2)
    if kind in b"*%~>":
        n = int(rest)
        count = 2 * n if kind == b"%" else n
        return line + b"".join([await _reply(reader) for _ in range(max(count, 0))])
    return line


def _name(request: bytes) -> bytes:
    """The command name of a RESP array request."""
    parts = request.split(b"\r\n")
    return parts[2].upper() if len(parts) > 2 else b""


class ErrorProxy:
    """``with ErrorProxy(port) as proxy``: clients connect to ``proxy.port``; set
    ``proxy.error`` (a reply such as ``"LOADING Redis is loading the dataset in memory"``) to
    refuse writes, ``None`` to pass everything."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target, self.host = target_port, host
        self.port = free_port(host)
        self.error: str | None = None
        self.injected = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> ErrorProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, self.port), self._loop
        ).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # each closes its sockets

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.target)
        in_multi = aborted = False
        try:
            while True:
                request = await _reply(client_r)
                name = _name(request)
                error = self.error
                if error is not None and name in WRITES:
                    self.injected += 1
                    aborted = aborted or in_multi
                    client_w.write(f"-{error}\r\n".encode())
                    await client_w.drain()
                    continue
                if name == b"MULTI":
                    in_multi, aborted = True, False
                elif name in (b"EXEC", b"DISCARD"):
                    if aborted and name == b"EXEC":
                        request = b"*1\r\n$7\r\nDISCARD\r\n"
                    in_multi = False
                server_w.write(request)
                await server_w.drain()
                answer = await _reply(server_r)
                if aborted and name == b"EXEC":
                    aborted = False
                    answer = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
                client_w.write(answer)
                await client_w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()  # not awaited: nothing may suspend here while the loop shuts down
