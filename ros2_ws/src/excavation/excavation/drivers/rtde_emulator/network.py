"""What the three servers share: listening sockets, their threads, every accepted client socket, and
the network faults a test injects (a silent peer, added latency).

One thread accepts on each port and one more serves each client, so a slow or silent client only
ever blocks its own thread.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


class Network:
    def __init__(self, host: str, lock: threading.RLock):
        self.host = host
        # The model's lock: dropping connections clears motion targets in the same critical section.
        self._lock = lock
        self.stopping = threading.Event()
        self.silent = False  # accept TCP connections but never answer or stream
        self.latency_s = 0.0  # delay before every reply and data package
        self._threads: list[threading.Thread] = []
        self._listeners: list[socket.socket] = []
        self._clients: list[socket.socket] = []

    def listen(self, port: int, handler) -> None:
        """Bind ``port`` and run ``handler(sock, addr)`` in its own thread for each client."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, port))
        srv.listen(8)
        srv.settimeout(0.2)
        self._listeners.append(srv)
        self.spawn(self._accept_loop, srv, handler)

    def spawn(self, fn, *args) -> threading.Thread:
        t = threading.Thread(target=fn, args=args, daemon=True, name=f"emu-{fn.__qualname__}")
        t.start()
        self._threads.append(t)
        return t

    def _accept_loop(self, srv: socket.socket, handler) -> None:
        while not self.stopping.is_set():
            try:
                sock, addr = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(sock)
            self.spawn(handler, sock, addr)

    def detach_clients(self) -> list[socket.socket]:
        """Forget every accepted socket and hand them over to be closed."""
        with self._lock:
            clients, self._clients = self._clients, []
        return clients

    def stop_listening(self) -> None:
        self.stopping.set()
        for s in self._listeners:
            close_socket(s)

    def join(self) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        self._threads.clear()
        self._listeners.clear()


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


# Linux SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; the socket module does not name it): the kernel stamps each
# received segment (CLOCK_REALTIME), so a package's arrival time does not depend on when this
# process's thread got round to reading it (on a loaded machine that can be tens of ms later).
SO_TIMESTAMPNS = 35


def enable_rx_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot (then no stamps)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def recv_exact_stamped(sock: socket.socket, n: int) -> tuple[bytes | None, float | None]:
    """``recv_exact`` that also returns the kernel's arrival time of the last byte read, on the
    ``time.monotonic`` clock (None without stamps)."""
    buf, stamp = b"", None
    while len(buf) < n:
        try:
            chunk, anc, _, _ = sock.recvmsg(n - len(buf), socket.CMSG_SPACE(16))
        except OSError:
            return None, None
        if not chunk:
            return None, None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                stamp = sec + nsec * 1e-9 - (time.time() - time.monotonic())
        buf += chunk
    return buf, stamp


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def hold_silently(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            if not sock.recv(4096):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
