"""The framed protocol between the server and an isolated worker, over a local socket.

A frame is a header (lengths) followed by a pickle (protocol 5) and its
out-of-band buffers: numpy arrays travel as raw bytes, never as JSON and
never copied into the pickle. Arrays and numpy scalars are rebuilt with
``numpy.frombuffer`` rather than numpy's own pickle support, because numpy 2
pickles name ``numpy._core``, which numpy 1.x (an MXNet worker) cannot import.
"""

from __future__ import annotations

import io
import pickle
import socket
import struct
import threading
from typing import Any

import numpy as np

_HEAD = struct.Struct("!QI")  # pickle length, number of buffers
_LEN = struct.Struct("!Q")


def _rebuild_array(dtype: str, shape: tuple[int, ...], buffer: Any) -> np.ndarray:
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)


def _rebuild_objects(shape: tuple[int, ...], items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape)


def _rebuild_scalar(dtype: str, raw: bytes) -> Any:
    return np.frombuffer(raw, dtype=np.dtype(dtype))[0]


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray and obj.dtype.kind not in "OV":
            arr = np.ascontiguousarray(obj)
            return _rebuild_array, (arr.dtype.str, arr.shape, pickle.PickleBuffer(arr))  # type: ignore[arg-type]
        if type(obj) is np.ndarray and obj.dtype.kind == "O":
            # numpy's own pickle of an object array names numpy 2's private modules
            return _rebuild_objects, (obj.shape, obj.reshape(-1).tolist())
        if isinstance(obj, np.generic) and obj.dtype.kind not in "OV":
            return _rebuild_scalar, (obj.dtype.str, obj.tobytes())
        return NotImplemented


def encode(message: Any) -> list[bytes | memoryview]:
    """A message as the list of byte chunks of one frame."""
    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=buffers.append).dump(message)
    data = out.getbuffer()
    raws = [b.raw() for b in buffers]
    header = _HEAD.pack(len(data), len(raws)) + b"".join(_LEN.pack(r.nbytes) for r in raws)
    return [header, data, *raws]


class Channel:
    """One end of a worker connection: whole messages in, whole messages out (thread-safe send)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._send_lock = threading.Lock()

    def send(self, message: Any) -> None:
        chunks = encode(message)
        with self._send_lock:
            if sum(len(c) for c in chunks) < 65536:
                self.sock.sendall(b"".join(chunks))
            else:
                for chunk in chunks:
                    self.sock.sendall(chunk)

    def recv(self) -> Any:
        """The next message; raises EOFError when the other end has gone."""
        head = self._exact(_HEAD.size)
        size, count = _HEAD.unpack(head)
        lengths = [_LEN.unpack(self._exact(_LEN.size))[0] for _ in range(count)] if count else []
        data = self._exact(size)
        buffers = [self._exact(n) for n in lengths]
        return pickle.loads(data, buffers=buffers)

    def _exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            read = self.sock.recv_into(view[got:], n - got)
            if read == 0:
                raise EOFError("the other end closed the connection")
            got += read
        return buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
