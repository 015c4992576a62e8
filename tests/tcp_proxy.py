"""A TCP proxy run as a process of its own, for chaos tests: the helpline talks to PostgreSQL through
it, and the test makes the database unreachable by killing the proxy (the port refuses, open
connections are cut) and reachable again by starting a new one on the same port.

    python tests/tcp_proxy.py --port 15432 --to 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import socketserver
import sys
import threading

CHUNK = 65536


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until either side closes; then close both, as a dropped link would."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            sink.sendall(data)
    for side in (source, sink):
        with contextlib.suppress(OSError):
            side.shutdown(socket.SHUT_RDWR)


class Proxy(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        super().__init__(("127.0.0.1", port), Handler)


class Handler(socketserver.BaseRequestHandler):
    server: Proxy

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.server.target, timeout=5)
        except OSError:
            return
        upstream.settimeout(None)
        back = threading.Thread(target=pipe, args=(upstream, self.request), daemon=True)
        back.start()
        pipe(self.request, upstream)
        back.join()
        upstream.close()


def blackhole(port: int) -> None:
    """Listen and never answer: the kernel completes each connection, nothing ever replies, as
    with a database host that is down behind a firewall that drops instead of refusing."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        print("listening, answering nothing", flush=True)
        threading.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", help="host:port to forward to")
    parser.add_argument("--blackhole", action="store_true", help="accept connections, answer nothing")
    args = parser.parse_args(argv)
    if args.blackhole:
        blackhole(args.port)
        return 0
    host, _, port = args.to.rpartition(":")
    with Proxy(args.port, (host, int(port))) as proxy:
        print("listening", flush=True)
        proxy.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
