"""Make the man pages from their sources, so they never drift apart:

    man/vrange.2      from docs/vrange.2.md (a minimal markdown-to-man converter)
    man/vrange-run.1  from `vrange-run --help` (argparse's text, parsed back)

    python3 tools/mkman.py           rewrite both
    python3 tools/mkman.py --check   exit 1 if a committed page differs

setup.cfg installs man/ as share/man/man1 and man2.  The markdown converter
knows only what docs/vrange.2.md uses: # title, ## and ### headings,
paragraphs, fenced code, tables (as tagged paragraphs), "-" and "1." lists,
"> " quotes, and `code`, **bold**, *italic* and [links](...) inline.
"""
import configparser
import contextlib
import io
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# No hyphenation, ragged right: option names and paths stay whole and copyable.
NO_HYPHENS = [".nh", ".nr HY 0", ".ad l"]   # HY: what man paragraphs reset hyphenation to


def version():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["metadata"]["version"]


# --- text --------------------------------------------------------------------------

def escape(text, code=False):
    """Plain text for troff: backslashes, dashes of options (every dash in
    code) as \\- so they stay ASCII, other non-ASCII as \\[uXXXX]."""
    text = text.replace("\\", "\\e")
    if code:
        text = text.replace("-", "\\-")
    else:   # an option (-v, --memory-limit), not a hyphen (non-volatile) nor a minus
        text = re.sub(r"(?<![\w-])-+\w[\w-]*", lambda m: m[0].replace("-", "\\-"), text)
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


INLINE = re.compile(r"`([^`]+)`"                                   # code
                    r"|\*\*(.+?)\*\*"                               # bold
                    r"|(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])"  # italic
                    r"|\[([^\]]+)\]\([^)\s]+\)")                     # link: its text


def inline(text, font="R"):
    """Markdown inline markup as troff font changes back to `font`."""
    out, at = [], 0
    for m in INLINE.finditer(text):
        out.append(escape(text[at:m.start()]))
        code, bold, italic, link = m.groups()
        if code is not None:
            out.append(f"\\fB{escape(code, code=True)}\\f{font}")
        elif bold is not None:
            out.append(f"\\fB{inline(bold, 'B')}\\f{font}")
        elif italic is not None:
            out.append(f"\\fI{inline(italic, 'I')}\\f{font}")
        else:
            out.append(inline(link, font))
        at = m.end()
    out.append(escape(text[at:]))
    return "".join(out)


def line(text):
    """One output line of filled text: never read as a request."""
    return "\\&" + text if text[:1] in (".", "'") else text


# --- markdown ----------------------------------------------------------------------

def markdown_to_man(md, name, section, manual):
    """docs/vrange.2.md-style markdown as a man page."""
    lines = md.splitlines()
    title = re.match(r"# (\S+)\((\d)\)", lines[0])
    if not title or (title[1].lower(), title[2]) != (name, section):
        raise ValueError(f"the first line must be '# {name.upper()}({section}) ...'")
    out = [f'.TH {name.upper()} {section} "" "vrangeemu {version()}" "{manual}"', *NO_HYPHENS]
    _blocks(lines[1:], out)
    return "\n".join(out) + "\n"


def _blocks(lines, out):
    i, current = 0, None
    while i < len(lines):
        text = lines[i]
        if not text.strip():
            i += 1
            continue
        if m := re.match(r"(#{2,3}) (.*)", text):
            current = m[2]
            out.append(f'.{"SH" if len(m[1]) == 2 else "SS"} "{inline(m[2])}"')
            i += 1
        elif text.startswith("```"):
            end = lines.index("```", i + 1)
            out += [".PP", ".in +4n", ".EX",
                    *(line(escape(code, code=True)) for code in lines[i + 1:end]),
                    ".EE", ".in"]
            i = end + 1
        elif text.startswith("|"):
            end = _until(lines, i, lambda t: not t.startswith("|"))
            _table(lines[i:end], out)
            i = end
        elif text.startswith(">"):
            end = _until(lines, i, lambda t: not t.startswith(">"))
            out.append(".RS 4")
            _blocks([re.sub(r"^> ?", "", t) for t in lines[i:end]], out)
            out.append(".RE")
            i = end
        elif m := re.match(r"(-|\d+\.) ", text):
            end = _until(lines, i + 1, lambda t: not t.strip() or re.match(r"(-|\d+\.) ", t))
            item = " ".join(t.strip() for t in [text[len(m[0]):], *lines[i + 1:end]])
            out += [f".IP {chr(92) + '(bu' if m[1] == '-' else m[1]} 4", line(inline(item))]
            i = end
        else:
            end = _until(lines, i, lambda t: not t.strip() or t.startswith(("```", "|", ">", "#"))
                         or re.match(r"(-|\d+\.) ", t))
            para = " ".join(t.strip() for t in lines[i:end])
            if current == "NAME":   # "name \- what", as whatis(1) reads it
                para = para.replace(" — ", " - ", 1)
                name, _, what = para.partition(" - ")
                out.append(line(f"{escape(name)} \\- {inline(what)}"))
            else:
                out += [".PP", line(inline(para))]
            i = end


def _until(lines, i, stop):
    while i < len(lines) and not stop(lines[i]):
        i += 1
    return i


def _table(rows, out):
    """A table as tagged paragraphs: the first cell is the tag; with more
    than two columns each further cell is "header: cell" on a line of its own."""
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
    head, body = cells[0], [c for c in cells[2:]]
    for row in body:
        out += [".TP", line(inline(row[0]))]
        if len(row) == 2:
            out.append(line(inline(row[1])))
        else:
            for n, (h, c) in enumerate(zip(head[1:], row[1:])):
                if n:
                    out.append(".br")
                out.append(line(f"\\fI{inline(h, 'I')}\\fR: {inline(c)}"))


# --- --help ------------------------------------------------------------------------

def help_text():
    """`vrange-run --help` of this checkout, one line per help entry."""
    sys.path.insert(0, str(ROOT))
    from vrangeemu import cli
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "10000"   # argparse wraps nothing then
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.parse_args(["--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return cli, out.getvalue()


def _option(invocation):
    """"-v, --verbose" / "--abi {a,b}" / "--seed N" / "program" in troff."""
    parts = []
    for spelling in invocation.split(", "):
        word, _, arg = spelling.partition(" ")
        text = f"\\fB{escape(word, code=True)}\\fR" if word.startswith("-") \
            else f"\\fI{escape(word)}\\fR"
        if arg:
            text += " " + (escape(arg) if arg.startswith("{") else f"\\fI{escape(arg)}\\fR")
        parts.append(text)
    return ", ".join(parts)


def _usage(usage):
    words = re.findall(r"\[[^\]]*\]|\S+", usage.split(" ", 2)[2])   # after "usage: vrange-run"
    shown = []
    for word in words:
        inner = word.strip("[]")
        shown.append(f"[{_option(inner)}]" if word.startswith("[") else
                     "\\fIargs\\fR ..." if word == "..." else _option(word))
    return "\\fBvrange\\-run\\fR " + " ".join(shown)


def _entries(block, out):
    """argparse's "  -x, --xx ARG  help" lines (the help may be on the next line)."""
    for text in block.splitlines():
        if m := re.match(r"  (\S(?:.*?\S)?)(?:  +(\S.*))?$", text):
            out += [".TP", _option(m[1])]
            if m[2]:
                out.append(line(inline(m[2])))
        elif text.strip():
            out.append(line(inline(text.strip())))


def _epilog(epilog, out):
    """Paragraphs, and "  term  text" lines (text continued further in) as
    tagged paragraphs."""
    for block in epilog.strip().split("\n\n"):
        items = []   # [term or None (a paragraph), [its lines]]
        for text in block.splitlines():
            if m := re.match(r"  (\S(?:.*?\S)?)  +(\S.*)$", text):
                items.append([m[1], [m[2]]])
            elif items and (text.startswith("   ") if items[-1][0] else not text[:1].isspace()):
                items[-1][1].append(text.strip())   # goes on
            else:
                items.append([None, [text.strip()]])
        for term, words in items:
            out += [".TP", line(inline(term))] if term else [".PP"]
            out.append(line(inline(" ".join(words))))


def help_to_man():
    cli, text = help_text()
    epilog = cli.EPILOG.strip()
    body = text.rstrip()
    if not body.endswith(epilog):
        raise ValueError("the --help text does not end with cli.EPILOG")
    blocks = body[:-len(epilog)].strip().split("\n\n")
    what = cli.__doc__.split(": ", 1)[1].rstrip(".")
    out = [f'.TH VRANGE-RUN 1 "" "vrangeemu {version()}" "User Commands"', *NO_HYPHENS,
           ".SH NAME", f"vrange\\-run \\- {escape(what)}",
           ".SH SYNOPSIS", _usage(blocks[0]),
           ".SH DESCRIPTION", line(inline(blocks[1])),
           ".SH OPTIONS"]
    for block in blocks[2:]:
        heading, _, rest = block.partition("\n")
        if heading in ("positional arguments:", "options:", "optional arguments:"):
            _entries(rest, out)
        elif heading.endswith(":"):   # an argument group: its title and description
            out += [f'.SS "{escape(heading[:-1])}"', ".PP", line(inline(rest.strip()))]
        else:                          # the group's options
            _entries(block, out)
    out.append(".SH NOTES")
    _epilog(epilog, out)
    out += [".SH SEE ALSO", "\\fBvrange\\fR(2), \\fBseccomp_unotify\\fR(2), \\fBptrace\\fR(2),",
            "\\fBmadvise\\fR(2); \\fBvrange\\-report \\-\\-help\\fR for plotting a \\fB\\-\\-trace\\fR file"]
    return "\n".join(out) + "\n"


def pages():
    """{path under man/: its troff text}, made from the sources now."""
    return {"vrange.2": markdown_to_man((ROOT / "docs" / "vrange.2.md").read_text(), "vrange",
                                        "2", "System Calls Manual"),
            "vrange-run.1": help_to_man()}


def main(argv):
    stale = []
    for name, text in pages().items():
        path = ROOT / "man" / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        sys.exit(f"mkman: man/{', man/'.join(stale)} differ from their sources: "
                 "run python3 tools/mkman.py")


if __name__ == "__main__":
    main(sys.argv[1:])
