"""The supervisor: the loop (loop.py) and the parts it is composed of."""
from ..linux.spawn import Interrupted, SetupError
from .loop import InvariantError, Supervisor, log_to_stderr

__all__ = ["Interrupted", "InvariantError", "SetupError", "Supervisor", "log_to_stderr"]
