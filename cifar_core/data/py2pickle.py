"""Write pickles the way Python 2's cPickle (protocol 2) wrote the official CIFAR-100 files.

Python 3's pickler cannot do this: it writes `str` as unicode and `bytes` through a `_codecs`
call, so under `pickle.load(f, encoding="bytes")` the keys would come back as `str` instead of
`bytes` as they do for the official files. Here every `str` is written as a Python 2 byte string
(SHORT_BINSTRING / BINSTRING), and the memo numbering, batching and numpy array layout follow
cPickle, so writing the official class names reproduces the official `meta` file byte for byte.

Supported values: dict (written in its iteration order), list, tuple, str, bytes, int, bool,
None, and C-contiguous numpy arrays of a one-byte dtype (the CIFAR `data` array).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

BATCH_SIZE = 1000  # cPickle emits APPENDS/SETITEMS in batches of this many items
_OP = pickle  # opcode constants (pickle.MARK, pickle.BINSTRING, ...) are bytes in Python 3


def dumps_py2(obj: Any) -> bytes:
    """Pickle `obj` as Python 2.7's cPickle.dump(obj, f, 2) would have."""
    writer = _Py2Writer()
    writer.out.write(_OP.PROTO + b"\x02")
    writer.save(obj)
    writer.out.write(_OP.STOP)
    return writer.out.getvalue()


@dataclass(frozen=True)
class _Global:
    """A module-level name (a class or function), written as a GLOBAL opcode."""

    module: str
    name: str


class _Py2Writer:
    def __init__(self) -> None:
        self.out = io.BytesIO()
        # cPickle numbers memo entries from 1, not 0.
        self.next_memo = 1

    def memoize(self) -> None:
        index = self.next_memo
        self.next_memo += 1
        if index < 256:
            self.out.write(_OP.BINPUT + bytes([index]))
        else:
            self.out.write(_OP.LONG_BINPUT + struct.pack("<I", index))

    def save(self, obj: Any) -> None:
        if obj is None:
            self.out.write(_OP.NONE)
        elif isinstance(obj, _Global):
            self.save_global(obj.module, obj.name)
        elif isinstance(obj, bool):
            self.out.write(_OP.NEWTRUE if obj else _OP.NEWFALSE)
        elif isinstance(obj, (int, np.integer)):
            self.save_int(int(obj))
        elif isinstance(obj, str):
            self.save_bytestring(obj.encode("latin1"))
        elif isinstance(obj, bytes):
            self.save_bytestring(obj)
        elif isinstance(obj, dict):
            self.save_dict(obj)
        elif isinstance(obj, list):
            self.save_list(obj)
        elif isinstance(obj, tuple):
            self.save_tuple(obj)
        elif isinstance(obj, np.ndarray):
            self.save_ndarray(obj)
        else:
            raise TypeError(f"cannot write {type(obj).__name__} as a Python 2 pickle")

    def save_int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out.write(_OP.BININT1 + struct.pack("<B", value))
        elif 0 <= value < 65536:
            self.out.write(_OP.BININT2 + struct.pack("<H", value))
        elif -(2**31) <= value < 2**31:
            self.out.write(_OP.BININT + struct.pack("<i", value))
        else:
            raise ValueError(f"integer {value} does not fit in 32 bits")

    def save_bytestring(self, data: bytes) -> None:
        if len(data) < 256:
            self.out.write(_OP.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.out.write(_OP.BINSTRING + struct.pack("<I", len(data)))
            self.out.write(data)
        # cPickle does not memoize strings shorter than two characters.
        if len(data) >= 2:
            self.memoize()

    def save_list(self, items: list) -> None:
        self.out.write(_OP.EMPTY_LIST)
        self.memoize()
        self._save_batched(items, lambda item: self.save(item), _OP.APPEND, _OP.APPENDS)

    def save_dict(self, mapping: dict) -> None:
        self.out.write(_OP.EMPTY_DICT)
        self.memoize()

        def save_pair(pair: tuple) -> None:
            self.save(pair[0])
            self.save(pair[1])

        self._save_batched(list(mapping.items()), save_pair, _OP.SETITEM, _OP.SETITEMS)

    def _save_batched(self, items: list, save_one, single_op: bytes, many_op: bytes) -> None:
        for start in range(0, len(items), BATCH_SIZE):
            batch = items[start : start + BATCH_SIZE]
            if len(batch) == 1:
                save_one(batch[0])
                self.out.write(single_op)
                continue
            self.out.write(_OP.MARK)
            for item in batch:
                save_one(item)
            self.out.write(many_op)

    def save_tuple(self, items: tuple) -> None:
        if not items:
            self.out.write(_OP.EMPTY_TUPLE)
            return
        short = {1: _OP.TUPLE1, 2: _OP.TUPLE2, 3: _OP.TUPLE3}.get(len(items))
        if short is None:
            self.out.write(_OP.MARK)
        for item in items:
            self.save(item)
        self.out.write(short or _OP.TUPLE)
        self.memoize()

    def save_global(self, module: str, name: str) -> None:
        self.out.write(_OP.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize()

    def save_reduce(self, module: str, name: str, args: tuple) -> None:
        self.save_global(module, name)
        self.save_tuple(args)
        self.out.write(_OP.REDUCE)
        self.memoize()

    def save_ndarray(self, array: np.ndarray) -> None:
        # The reduce protocol of Python 2 era numpy: _reconstruct(ndarray, (0,), 'b'), then
        # BUILD with (version, shape, dtype, is_fortran, raw bytes).
        if array.dtype.itemsize != 1 or not array.flags.c_contiguous:
            raise TypeError("only C-contiguous arrays of a one-byte dtype are supported")
        self.save_reduce("numpy.core.multiarray", "_reconstruct", (_Global("numpy", "ndarray"), (0,), "b"))
        self.out.write(_OP.MARK)
        self.save_int(1)
        self.save_tuple(tuple(int(n) for n in array.shape))
        self.save_dtype(array.dtype)
        self.save(False)
        self.save_bytestring(array.tobytes())
        self.out.write(_OP.TUPLE)
        self.memoize()
        self.out.write(_OP.BUILD)

    def save_dtype(self, dtype: np.dtype) -> None:
        # dtype('u1') reduces to dtype('u1', 0, 1) with state (3, '|', None, None, None, -1, -1, 0).
        self.save_reduce("numpy", "dtype", (dtype.str[1:], 0, 1))
        self.save_tuple((3, dtype.str[0], None, None, None, -1, -1, 0))
        self.out.write(_OP.BUILD)
