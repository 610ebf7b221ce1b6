"""--live's view: the supervisor's hook (`due_in()`, `refresh()`, `close()`).

`refresh` takes a snapshot of the RunState every REFRESH seconds and hands
it to a drawing thread, so rendering and a slow or blocked terminal never
hold up the loop that answers the calls.  On a terminal the thread redraws
in place (rich.live.Live); otherwise it prints a plain-text frame at most
every PLAIN_EVERY seconds.  The last frame (marked ended) is drawn at the
End event, or at close() if none came, with each process's counts at exit
(from its SpaceEnd event), not those of the last snapshot.
"""
import os
import sys
import threading
import time

from ..events import End, SpaceEnd
from .render import render
from .snapshot import PLAIN_ROWS, final, snapshot

REFRESH = 0.25        # seconds between snapshots (and redraws on a terminal)
PLAIN_EVERY = 1.0     # seconds between plain-text frames when stderr is no terminal
CLOSE_WAIT = 2.0      # seconds the last frame may take to be drawn


def is_terminal(stream):
    try:
        return stream.isatty() and os.environ.get("TERM", "") not in ("dumb", "")
    except (AttributeError, ValueError, OSError):
        return False


class LiveView:
    """The supervisor's --live hook.  `stream`: where to draw (None: stderr);
    `state`: the RunState shown; `bus`: the events (SpaceEnd counts the
    processes that are gone, End draws the last frame); `interactive`:
    redraw in place (default: if `stream` is a terminal)."""

    def __init__(self, stream, state, bus, interactive=None):
        from rich.console import Console
        self.state = state
        self._gone = set()                  # pids of the SpaceEnd events seen
        self._ended_rows = []               # (pid, program, Stats) of each SpaceEnd
        self._ended = False                 # the last frame is handed over
        self.stream = stream if stream is not None else sys.stderr
        if self.stream is None:   # no stderr at all: never fall back to stdout
            self.stream = open(os.devnull, "w")
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        if self.interactive:
            self.console = Console(file=self.stream, highlight=False, emoji=False)
        else:
            width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 100
            self.console = Console(file=self.stream, color_system=None, force_terminal=False,
                                   highlight=False, emoji=False, width=width)
        self.ascii = not (self.console.encoding or "").lower().startswith("utf")
        self.started = time.monotonic()
        self._due = self.started + 0.1      # first frame once the program runs
        self._cache = {}
        self._last = None                   # newest snapshot taken
        self._cond = threading.Condition()
        self._pending = None                # newest snapshot not drawn yet
        self._closing = False
        self._thread = None
        self._live = None
        self._failure = None                # why the view stopped, still to be printed
        self._stopped = False               # no more frames (failure or closed)
        bus.subscribe(self._on_space_end, SpaceEnd)
        bus.subscribe(self._on_end, End)

    # -- the loop's side (main thread) --
    def due_in(self):
        """Seconds until the next refresh is due (<= 0: now)."""
        if self._stopped or self._ended:   # at once if a failure is still to be reported
            return 0.0 if self._failure else 3600.0
        return self._due - time.monotonic()

    def refresh(self):
        """Take a snapshot (bounded work) and hand it to the drawing thread."""
        self._due = time.monotonic() + REFRESH
        if self._stopped or self._ended:   # the last frame is handed over: keep it
            self._report_failure()
            return
        try:
            snap = snapshot(self.state, self._gone, started=self.started, cache=self._cache,
                            max_processes=self._rows())
        except Exception as exc:   # a view bug must not stop the tracing
            self._fail(exc, "snapshot")
            return
        self._last = snap
        with self._cond:
            self._pending = snap
            self._cond.notify()
        if self._thread is None:
            # Started here, not in __init__: by now the supervisor has blocked
            # the signals its signalfd reads, and the thread inherits that mask.
            self._thread = threading.Thread(target=self._draw_loop, name="vrange-live",
                                            daemon=True)
            self._thread.start()

    def close(self):
        """Draw the last frame if the End event did not, and give the
        terminal back.  Never raises."""
        if not self._ended:
            self._finish()

    def _on_space_end(self, ev):
        self._gone.add(ev.pid)
        self._ended_rows.append((ev.pid, ev.program, ev.stats))

    def _on_end(self, ev):
        if not self._ended:
            self._finish()

    def _finish(self):
        """Draw the last frame (marked ended) and give the terminal back."""
        self._ended = True
        try:
            last_frame = None
            if self._last is not None or self._gone:   # it ran (maybe not until a first frame)
                # Every process has exited now (an exec'd one ended once per
                # program it ran: count pids).
                last_frame = final(self._last, self._ended_rows,
                                   elapsed=time.monotonic() - self.started,
                                   exited=len(self._gone), max_processes=self._rows())
        except Exception:
            last_frame = None
        with self._cond:
            self._closing = True
            if last_frame is not None and not self._stopped:
                self._pending = last_frame
            self._cond.notify()
        if self._thread is None:
            self._draw_loop()     # nothing drawn yet: draw the final frame here
        else:
            self._thread.join(CLOSE_WAIT)
        self._report_failure()

    def _rows(self):
        if not self.interactive:
            return PLAIN_ROWS
        try:
            height = self.console.size.height
        except Exception:
            height = 24
        return max(1, min(50, (height - 10) // 2))

    def _fail(self, exc, where):
        """Stop the view (not the tracing) after a bug of ours; the message
        and traceback are printed from the loop's thread once the terminal
        is given back."""
        import traceback
        self._failure = (f"vrange-run: --live: the view stopped ({where}: "
                         f"{type(exc).__name__}: {exc}); the program runs on\n"
                         + "".join(traceback.format_exception(type(exc), exc,
                                                              exc.__traceback__)))
        self._stopped = True     # after _failure: due_in() then asks for a refresh to report
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify()
        if where == "snapshot":
            if self._thread is not None:
                self._thread.join(CLOSE_WAIT)
            self._report_failure()

    def _report_failure(self):
        failure, self._failure = self._failure, None
        if failure:
            try:
                sys.stderr.write(failure)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    # -- the drawing thread --
    def _draw_loop(self):
        failure = None
        try:
            while True:
                with self._cond:
                    while not self._closing:
                        if self._pending is not None:
                            wait = self._next_frame - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        else:
                            self._cond.wait()
                    snap, self._pending = self._pending, None
                    closing = self._closing
                if snap is not None:
                    self._draw(snap)
                if closing:
                    break
        except (OSError, ValueError):   # stderr closed or gone: just stop drawing
            pass
        except Exception as exc:
            failure = exc
        finally:
            self._stop_live()
            self._stopped = True
        if failure is not None:    # reported by the loop's thread (refresh or close)
            self._fail(failure, "drawing")

    _next_frame = 0.0

    def _draw(self, snap):
        if self.interactive:
            try:   # the terminal's size now; not $COLUMNS, which may be stale
                self.console.size = os.get_terminal_size(self.stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass
        view = render(snap, self.console.width, self.ascii)
        if self.interactive:
            if self._live is None:
                from rich.live import Live
                # No auto-refresh thread: frames come from the loop.  Writes of
                # our own to sys.stderr (-v) are printed above the view.
                self._live = Live(view, console=self.console, auto_refresh=False,
                                  transient=False, redirect_stdout=False,
                                  redirect_stderr=True, vertical_overflow="ellipsis")
                self._live.start()
            self._live.update(view, refresh=True)
        else:
            self.console.print(view)
            self.console.print()
            self._next_frame = time.monotonic() + PLAIN_EVERY

    def _stop_live(self):
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()     # shows the cursor again; restores sys.stderr
            except Exception:
                pass
