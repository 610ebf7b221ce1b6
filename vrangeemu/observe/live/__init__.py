"""--live: a terminal view of the traced processes, drawn with rich on stderr.

Three layers, so the view is testable without ptrace and cheap for the loop:

  snapshot.py  `snapshot(state, gone)`: what the view shows, copied out of
               the RunState into plain data (`Snapshot`), with bounded work
               (it runs in the supervisor's loop)
  render.py    `render(snapshot, width)`: a rich renderable (pure)
  view.py      `LiveView(stream, state, bus)`: the supervisor's hook
               (`due_in()`, `refresh()`, `close()`); a thread draws

rich is imported only where a frame is drawn.
"""
from .view import LiveView

__all__ = ["LiveView"]
