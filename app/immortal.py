"""Make the objects gunicorn's master preloaded immortal before it forks its
workers (gunicorn.conf.py, pre_fork), so the workers go on sharing their pages.

A forked worker shares the master's memory until it writes to a page, and
CPython writes to every object it uses: each reference taken or dropped changes
the count in the object's header. A worker serving requests thus soon holds a
private copy of every page with an object on its path, although it changes no
value: measured here, 60 % of the preloaded heap (docs/performance.md).
gc.freeze() keeps the garbage collector's writes away; the counts remain.

CPython 3.12 made some objects immortal (PEP 683; copy-on-write after fork is one
of its stated reasons): an immortal object's count is never written. The
interpreter keeps that for its own singletons and offers no call to ask it for
others (Meta's CPython fork, Cinder, has `gc.immortalize_heap()`). So this writes
the immortal count into each object reachable from the collector's list, once,
in the master.

What it changes: those objects are never freed (all were alive when the workers
started; the few a worker drops later, such as an evicted cache entry, stay
allocated) and their count reads 2**32 - 1. Nothing here depends on a count but
CPython's optimisations that reuse an object with one reference in place.

Only on 64-bit CPython 3.12 and 3.13 with the GIL, whose layout of the count this
writes: the low 32 bits all ones. An increment or decrement by code built for an
older version moves it by one, far from zero, and CPython reads it immortal
again: PEP 683 chose the value for that. Anywhere else it does nothing, and says
why.
"""

import ctypes
import gc
import sys
import sysconfig
import types
from collections.abc import Iterable

# _Py_IMMORTAL_REFCNT of 64-bit CPython 3.12 and 3.13 (Include/object.h).
IMMORTAL_REFCOUNT = 0xFFFFFFFF
SUPPORTED_VERSIONS = ((3, 12), (3, 13))


def why_not_supported() -> str | None:
    """None where this interpreter's objects can be made immortal, else why not."""
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    version = sys.version_info[:2]
    if version not in SUPPORTED_VERSIONS:
        return f"CPython {version[0]}.{version[1]} (only 3.12 and 3.13 have this layout)"
    if sys.maxsize < 2**32:
        return "a 32-bit build"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "a free-threaded build (its counts are laid out otherwise)"
    return None


def is_immortal(obj: object) -> bool:
    return sys.getrefcount(obj) >= IMMORTAL_REFCOUNT


def _code_parts(code: types.CodeType) -> Iterable[object]:
    """What a code object holds (it is not a container the collector walks)."""
    yield from (code.co_consts, code.co_names, code.co_varnames, code.co_freevars)
    yield from (code.co_cellvars, code.co_filename, code.co_name, code.co_qualname)
    yield from (code.co_linetable, code.co_exceptiontable)
    yield from code.co_consts


def make_preloaded_objects_immortal() -> int:
    """Make every object reachable from the collector's list immortal; how many
    were made so (0 where not supported: see why_not_supported)."""
    if why_not_supported() is not None:
        return 0
    # Depth first, without a set of visited objects (it would be garbage of its own
    # in the shared heap): an object made immortal is one already visited.
    pending: list[object] = gc.get_objects()
    made = 0
    while pending:
        obj = pending.pop()
        if is_immortal(obj):
            continue
        ctypes.c_ssize_t.from_address(id(obj)).value = IMMORTAL_REFCOUNT
        made += 1
        if isinstance(obj, types.CodeType):
            pending.extend(_code_parts(obj))
            continue
        pending.extend(gc.get_referents(obj))
        if isinstance(obj, dict):
            # The collector skips the keys of a dict whose keys are all strings
            # (strings cannot form cycles); the interpreter uses them all the same.
            pending.extend(dict.keys(obj))
    return made
