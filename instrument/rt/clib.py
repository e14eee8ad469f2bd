"""The C library built from mixer.c, loaded with ctypes: its functions, typed, and a check that it
was built for the records in rt/structs.py, field by field (name and offset).

`pip install` builds mixer.c into `instrument/rt/_mixer*.so`, a plain shared library with no
Python module in it. The build is optional: without a C compiler the install goes on, `load()`
says why in one line, and the audio process runs engine.py's cycle instead.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util

from .structs import SHARED_STRUCTS, EngineSettings, Layout, RingIndex, c_name, fields

LIBRARY = "instrument.rt._mixer"
_i64, _f64, _ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
_f64_ptr = ctypes.POINTER(_f64)


def python_fields() -> list[tuple[str, int]]:
    """("struct.field", offset) of every shared field as rt/structs.py lays it out."""
    return [(f"{c_name(struct)}.{name}", offset) for struct in SHARED_STRUCTS for name, offset in fields(struct)]


def c_fields(lib: ctypes.CDLL) -> list[tuple[str, int]]:
    """The same list, as the compiler laid the library's structures out."""
    names, offsets = ctypes.c_char_p(), ctypes.POINTER(_i64)()
    count = lib.lsn_fields(ctypes.byref(names), ctypes.byref(offsets))
    return list(zip(names.value.decode().split("\n")[:count], offsets[:count]))


def declare(lib: ctypes.CDLL) -> None:
    ring = ctypes.POINTER(RingIndex)
    lib.lsn_new.restype, lib.lsn_new.argtypes = _ptr, [ctypes.POINTER(EngineSettings), ctypes.POINTER(Layout)]
    lib.lsn_free.restype, lib.lsn_free.argtypes = None, [_ptr]
    lib.lsn_begin.restype, lib.lsn_begin.argtypes = None, [_ptr]
    lib.lsn_mix.restype, lib.lsn_mix.argtypes = None, [_ptr, _ptr, _i64, _i64]
    lib.lsn_midi.restype, lib.lsn_midi.argtypes = None, [_ptr, ctypes.c_char_p, _i64, _i64]
    lib.lsn_jack_attach.restype = ctypes.c_int
    lib.lsn_jack_attach.argtypes = [_ptr, ctypes.c_char_p, _ptr, _ptr, _ptr, _i64]
    lib.lsn_fields.restype = _i64
    lib.lsn_fields.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.POINTER(_i64))]
    lib.lsn_ring_push.restype = ctypes.c_bool
    lib.lsn_ring_push.argtypes = [ring, _f64_ptr, _i64, _f64, _f64, _f64, _f64]
    lib.lsn_ring_pop.restype, lib.lsn_ring_pop.argtypes = ctypes.c_bool, [ring, _f64_ptr, _i64, _f64_ptr]
    lib.lsn_store_release.restype, lib.lsn_store_release.argtypes = None, [_ptr, _i64]
    lib.lsn_load_acquire.restype, lib.lsn_load_acquire.argtypes = _i64, [_ptr]


@functools.cache
def load() -> ctypes.CDLL | str:
    """The loaded library, or why it cannot be used (one line)."""
    spec = importlib.util.find_spec(LIBRARY)
    if spec is None or not spec.origin:
        return "the C mixer was not built (reinstall with a C compiler: apt-get install gcc libc6-dev)"
    try:
        lib = ctypes.CDLL(spec.origin)
        declare(lib)
    except (OSError, AttributeError) as err:
        return f"{spec.origin} cannot be loaded ({err}; reinstall: pip install -e .)"
    if c_fields(lib) != python_fields():
        return f"{spec.origin} was built for another shared layout (reinstall: pip install -e .)"
    return lib


def available() -> str | None:
    """None when the C library can run; otherwise why not, in one line."""
    lib = load()
    return lib if isinstance(lib, str) else None
