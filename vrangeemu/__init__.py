"""vrangeemu: the vrange() volatile-range syscall, emulated on a stock kernel.

The public API is the Python client for programs run under `vrange-run`
(native ABI); the supervisor, the model and the views are internal:

    from vrangeemu import VolatileBuffer
    buf = VolatileBuffer(4 * PAGE_SIZE)
    buf.mark_volatile()
    if buf.mark_nonvolatile():   # True: some page was discarded meanwhile
        ...
"""
import importlib

# Loaded on first use: `vrange-run` imports this package before its first
# line runs, and what runs before that line is not guarded (cli.HELD_SIGNALS).
_EXPORTS = {"PAGE_SIZE": "abi", **dict.fromkeys(
    ("NONVOLATILE", "PARTIAL", "VOLATILE", "VolatileBuffer", "VrangeError",
     "VrangeUnavailable", "syscall_nr", "vrange"), "client")}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
