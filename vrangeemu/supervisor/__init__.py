"""The supervisor: the loop (loop.py) and the parts it is composed of."""
from ..linux.spawn import SetupError
from .loop import InvariantError, Supervisor, log_to_stderr

__all__ = ["InvariantError", "SetupError", "Supervisor", "log_to_stderr"]
