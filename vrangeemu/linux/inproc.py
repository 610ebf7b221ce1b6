"""The in-process library (native/inproc/inproc.c, built as vrangeemu._inproc):
where it is, the environment that preloads it, and its hello call.

The library answers the vrange calls a program makes through libc's
syscall() in the calling thread and logs them in a region it shares with
the supervisor (native/ext/region.h); the supervisor attaches that region
when the library's first call says hello (supervisor/native_calls.py).
"""
import importlib.util
import os

from .._native import lib

HELLO_MODE = lib.VR_HELLO_MODE     # vrange(memfd, eventfd, HELLO_MODE, ...)
BARRIER_MODE = lib.VR_BARRIER_MODE  # answered after the signals sent before it
ESCAPE_ARG = lib.VR_ESCAPE_ARG     # the sixth argument of the library's own calls
NR_VARIABLE = "VRANGEEMU_INPROC_NR"


def library_path():
    """The built library, or None (a source checkout not built in place)."""
    spec = importlib.util.find_spec("vrangeemu._inproc")
    return spec.origin if spec and spec.origin and os.path.exists(spec.origin) else None


def environment(nr, path, env=None):
    """The variables that preload `path` into the program for syscall `nr`
    (the program's own LD_PRELOAD comes after it)."""
    env = os.environ if env is None else env
    theirs = env.get("LD_PRELOAD", "")
    return {"LD_PRELOAD": f"{path} {theirs}".strip(), NR_VARIABLE: str(nr)}


def is_hello(args):
    return (args[2] & 0xFFFFFFFF) == HELLO_MODE and args[5] == ESCAPE_ARG


def is_barrier(args):
    """The library sent vrange-run a SIGUSR1 and waits until it is handled
    (the loop handles signals before calls: answering is enough)."""
    return (args[2] & 0xFFFFFFFF) == BARRIER_MODE and args[5] == ESCAPE_ARG
