"""The picture of a Run: a matplotlib Figure, one row per process and one for
the pressure readings, on one time axis in seconds.  matplotlib (its Agg
backend, never pyplot) is imported only when a figure is drawn."""
from ..observe.stats import human
from .series import exit_text, shown, subtitle

MiB = 1 << 20
WHY_COLOURS = {"pressure": "tab:purple", "signal": "tab:green"}
LABELLED_PURGES = 6      # a row with more purges than this gets no text per purge line
LABELLED_EVENTS = 8      # same for groups of fork/exec/exit notes


def _mib(series):
    return [t for t, _ in series], [v / MiB for _, v in series]


def _step(ax, series, until, **kw):
    """Draw a step series holding its last value until `until`."""
    if not series:
        return None
    xs, ys = _mib(series)
    if until is not None and until > xs[-1]:
        xs, ys = xs + [until], ys + [ys[-1]]
    line, = ax.step(xs, ys, where="post", **kw)
    ax.fill_between(xs, ys, step="post", color=kw.get("color"), alpha=0.12, linewidth=0)
    return line


def _nearby(notes, within):
    """[(t, text)] sorted by t, grouped so that each group spans < `within`.

    >>> _nearby([(0, "a"), (1, "b"), (5, "c")], 2)
    [[(0, 'a'), (1, 'b')], [(5, 'c')]]
    """
    groups = []
    for note in notes:
        if groups and note[0] - groups[-1][0][0] < within:
            groups[-1].append(note)
        else:
            groups.append([note])
    return groups


def _process_row(ax, p, run):
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    end = p.end if p.end is not None else run.t_end
    # outside the process's life: shaded
    if p.first > 0:
        ax.axvspan(0, p.first, color="0.92", linewidth=0, zorder=0)
    if end < run.t_end:
        ax.axvspan(end, run.t_end, color="0.92", linewidth=0, zorder=0)
    handles = []
    if p.rss:
        xs, ys = _mib(p.rss)
        # measured only at samples (100 ms) and purges: dots, joined by a dotted line
        line, = ax.plot(xs, ys, color="tab:blue", linewidth=1.2, linestyle=":",
                        marker="o" if len(xs) < 300 else None, markersize=4,
                        label="RSS, anonymous (sampled)", gid=f"rss-{p.pid}")
        handles.append(line)
    line = _step(ax, p.volatile, end, color="tab:orange", linewidth=1.6,
                 label="volatile", gid=f"volatile-{p.pid}")
    if line:
        handles.append(line)
    line = _step(ax, p.purged, end, color="tab:red", linewidth=1.6,
                 label="purged (still volatile)", gid=f"purged-{p.pid}")
    if line:
        handles.append(line)

    top = blended_transform_factory(ax.transData, ax.transAxes)
    by_why = {}
    for t, why, nbytes in p.purges:
        by_why.setdefault(why, []).append((t, nbytes))
    for why, items in by_why.items():
        colour = WHY_COLOURS.get(why, "tab:brown")
        many = len(p.purges) > 30
        ax.vlines([t for t, _ in items], 0, 1, transform=top, colors=colour,
                  linestyles="dashed", linewidth=0.6 if many else 1, alpha=0.4 if many else 0.7,
                  zorder=1,
                  gid=f"purges-{why}-{p.pid}")
        handles.append(Line2D([], [], color=colour, linestyle="dashed",
                              label=f"purge: {why} (x{len(items)})"))
    if len(p.purges) <= LABELLED_PURGES:
        for t, why, nbytes in p.purges:
            ax.annotate(f"purge ({why})\n{human(nbytes)}", xy=(t, 0.5), xycoords=top,
                        xytext=(3, 0), textcoords="offset points", fontsize=7,
                        color=WHY_COLOURS.get(why, "tab:brown"), va="center")
    if p.sigbus:
        ax.plot([t for t, _, _ in p.sigbus], [0.04] * len(p.sigbus), transform=top,
                         linestyle="none", marker="X", markersize=7, color="black",
                         gid=f"sigbus-{p.pid}", clip_on=False, zorder=5)
        handles.append(Line2D([], [], linestyle="none", marker="X", color="black",
                              label=f"SIGBUS (x{len(p.sigbus)})"))

    # where the process came from, what it ran and made, how it ended
    notes = []
    if p.born:
        notes.append((p.first, f"{p.born} of {p.parent}"))
    notes += [(t, f"exec {name}") for t, name in p.programs]
    notes += [(t, f"{kind} -> {child}") for t, child, kind in p.children]
    if p.end is not None:
        notes.append((p.end, exit_text(p.how, p.value) or "gone"))
    notes.sort(key=lambda n: n[0])
    if notes:
        ax.plot([t for t, _ in notes], [1.0] * len(notes), transform=top, linestyle="none",
                marker="v", markersize=6, color="0.35", clip_on=False, zorder=5,
                gid=f"lifecycle-{p.pid}")
        handles.append(Line2D([], [], linestyle="none", marker="v", color="0.35",
                              label="fork / exec / exit"))
        groups = _nearby(notes, 0.1 * run.t_end)
        if len(groups) <= LABELLED_EVENTS:
            for group in groups:
                t = group[0][0]
                texts = [text for _, text in group]
                if len(texts) > 5:
                    texts = texts[:4] + [f"... {len(texts) - 4} more"]
                right = t > 0.75 * run.t_end      # near the right edge: text to the left
                ax.annotate("\n".join(texts), xy=(t, 1.0), xycoords=top,
                            xytext=(-4 if right else 4, -4), textcoords="offset points",
                            fontsize=7, color="0.25", va="top",
                            ha="right" if right else "left")

    origin = f", {p.born} of pid {p.parent}" if p.born else ""
    ax.set_title(f"pid {p.pid}: {p.ran}{origin}",
                 loc="left", fontsize=9)
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ymax = ax.get_ylim()[1]
    ax.set_ylim(0, ymax * 1.25 if ymax > 0 else 1)   # room for the notes at the top
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)


def _pressure_row(ax, pr, run):
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    scale = 1 if pr.psi else MiB
    xs = [t for t, _ in pr.usage]
    ys = [v / scale for _, v in pr.usage]
    if xs and run.t_end > xs[-1]:
        xs, ys = xs + [run.t_end], ys + [ys[-1]]
    label = ("memory stall (us per poll, PSI)" if pr.psi else
             "usage (summed RSS)" if pr.source.startswith("RSS budget") else
             "usage (cgroup memory)")
    handles = []
    line, = ax.step(xs, ys, where="post", color="tab:blue", linewidth=1.4, label=label,
                    gid="pressure-usage")
    if len(pr.usage) < 300:     # the readings themselves (polled: none in between)
        ax.plot(xs[:len(pr.usage)], ys[:len(pr.usage)], linestyle="none", marker=".",
                markersize=4, color="tab:blue")
    handles.append(line)
    styles = {"limit": ("black", "solid", "limit"),
              "high": ("tab:red", "dashed", "high mark (purging starts)"),
              "low": ("tab:green", "dashed", "low mark (purged down to)")}
    for name, (colour, style, text) in styles.items():
        series = getattr(pr, name)
        if any(v for _, v in series):
            sx = [t for t, _ in series] + [run.t_end]
            sy = [v / scale for _, v in series] + [series[-1][1] / scale]
            line, = ax.step(sx, sy, where="post", color=colour, linestyle=style,
                            linewidth=1.1, label=text)
            handles.append(line)
    if pr.need:
        top = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot([t for t, _ in pr.need], [0.96] * len(pr.need), transform=top,
                linestyle="none", marker="v", markersize=5, color="tab:purple",
                gid="pressure-need")
        handles.append(Line2D([], [], linestyle="none", marker="v", color="tab:purple",
                              label=f"reading asked for a purge (x{len(pr.need)})"))
    ax.set_title(f"memory pressure: {pr.source}", loc="left", fontsize=9)
    ax.set_ylabel("stall us / poll" if pr.psi else "MiB")
    top = max([v for _, v in pr.usage + pr.limit + pr.high] + [0]) / scale
    ax.set_ylim(0, max(top * 1.12, 1))
    if pr.psi:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)


def figure(run, most=8):
    """A matplotlib Figure: one row per process (at most `most`), then the
    pressure readings, on one time axis in seconds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    procs = shown(run, most)
    rows = len(procs) + (run.pressure is not None)
    rows = max(rows, 1)
    # constrained_layout=True: understood by every matplotlib since 3.5 (install_requires)
    fig = Figure(figsize=(11, 1.3 + 2.4 * rows), constrained_layout=True)
    FigureCanvasAgg(fig)   # Agg without pyplot: no window, no global backend switch
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for ax, p in zip(axes, procs):
        _process_row(ax, p, run)
    if run.pressure is not None:
        _pressure_row(axes[len(procs)], run.pressure, run)
    if not procs and run.pressure is None:
        axes[0].text(0.5, 0.5, "no process or pressure events in this trace",
                     transform=axes[0].transAxes, ha="center", va="center")
    axes[-1].set_xlabel("time since vrange-run started (s)")
    axes[-1].set_xlim(0, max(run.t_end, 1e-3) * 1.01)
    fig.suptitle(run.title, fontsize=12, fontweight="bold")
    fig.supxlabel(subtitle(run, len(procs)), fontsize=8, color="0.3")
    return fig
