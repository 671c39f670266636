"""A TCP proxy in front of the PostgreSQL server that a test can cut: what a server lost
after the ledger opened looks like to the ledger (connections dropped, none accepted)."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class CuttableProxy:
    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._cut = False
        self._lock = threading.Lock()  # a connection accepted while cutting is cut too
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """`url` (a postgresql:// one) through this proxy."""
        parts = urlsplit(url)
        where = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{where}127.0.0.1:{self.port}"))

    def cut(self) -> None:
        """Stops accepting and drops every connection, as a server gone away."""
        with self._lock:
            self._cut = True
            self._listener.close()
            for sock in self._sockets:
                _drop(sock)

    def _accept(self) -> None:
        while not self._cut:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                if self._cut:
                    _drop(client)
                    _drop(server)
                    return
                self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)


def _drop(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
