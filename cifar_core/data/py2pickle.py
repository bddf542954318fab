"""Write pickles the way Python 2's cPickle (protocol 2) wrote the official CIFAR-100 files.

Python 3's pickler writes `str` as unicode and `bytes` through `_codecs`, so under
`encoding="bytes"` the keys would not come back as `bytes`, as the official files' do. `Py2Pickler`
writes byte strings, memo entries and numpy arrays as cPickle did: the official class names give
the official `meta` byte for byte.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy as np

# numpy's own array reconstructor (numpy 2 moved it to numpy._core; Python 2 files name numpy.core).
_RECONSTRUCT = np.ndarray(0).__reduce__()[0]


def dumps_py2(obj: Any) -> bytes:
    """Pickle `obj` as Python 2.7's cPickle.dump(obj, f, 2) would have."""
    out = io.BytesIO()
    Py2Pickler(out).dump(obj)
    return out.getvalue()


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler: only it lets a subclass handle str
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=2)

    def memoize(self, obj: Any) -> None:
        index = len(self.memo) + 1  # cPickle numbered memo entries from 1, not 0
        self.write(self.put(index))
        self.memo[id(obj)] = index, obj

    def save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<I", len(data)) + data)
        if len(data) >= 2:  # cPickle did not memoize strings shorter than two characters
            self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def reducer_override(self, obj: Any) -> Any:
        # The reductions of Python 2 era numpy: _reconstruct(ndarray, (0,), 'b') with the state
        # (version, shape, dtype, is_fortran, raw bytes), and dtype(str, 0, 1) with ints, not bools.
        if isinstance(obj, np.ndarray):
            if obj.dtype.itemsize != 1 or not obj.flags.c_contiguous:
                raise TypeError("only C-contiguous arrays of a one-byte dtype are supported")
            return _RECONSTRUCT, (np.ndarray, (0,), "b"), (1, obj.shape, obj.dtype, False, obj.tobytes())
        if isinstance(obj, np.dtype):
            return np.dtype, (obj.str[1:], 0, 1), (3, obj.str[0], None, None, None, -1, -1, 0)
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)
