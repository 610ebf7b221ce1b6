"""Build C programs against vrange.h: find the compiler, the flags, run it.

The tests, the benchmarks and the demos all compile C programs (test
programs, the floors, libvrcache.so, the demos' programs); this is the one
place that knows how.

Pure Python and part of the package, so it is importable after a
non-editable `pip install .` too; the C sources are not installed, so the
callers say where the repository checkout is (`root=`) unless this module is
itself imported from one.

>>> abi_define("v10")
'-DVRANGE_ABI=VRANGE_ABI_V10'
"""
import os
import shutil
import subprocess
from pathlib import Path

# The ABIs native/include/vrange.h knows (the names of vrangeemu.abi.PROFILES).
ABIS = ("native", "v7", "v10", "v12")
INCLUDE = Path("native") / "include"   # under the repository root: vrange.h
DEFAULT_FLAGS = ("-O2", "-Wall")


class CompilerNotFound(RuntimeError):
    """No usable C compiler; the message says how to get one."""


def compiler():
    """The C compiler to run: $CC if set, else `cc` or `gcc` on PATH.

    Returns the command as given ($CC is one word, a name or a path) or the
    full path found on PATH.  Raises CompilerNotFound if there is none."""
    cc = os.environ.get("CC")
    if cc:
        if not shutil.which(cc):
            raise CompilerNotFound(f"$CC is {cc!r}, which is not a command: set CC to a C "
                                   "compiler (e.g. CC=gcc) or unset it to use cc")
        return cc
    found = shutil.which("cc") or shutil.which("gcc")
    if not found:
        raise CompilerNotFound("no C compiler found (tried $CC, cc, gcc): install one "
                               "(e.g. `apt-get install gcc`) or set CC to its path")
    return found


def abi_define(abi="native"):
    """The -D flag that selects ABI `abi` (a name of ABIS) in vrange.h.

    Returns e.g. '-DVRANGE_ABI=VRANGE_ABI_NATIVE'; raises ValueError for an
    unknown name."""
    if abi not in ABIS:
        raise ValueError(f"unknown ABI {abi!r}: vrange.h knows {', '.join(ABIS)}")
    return f"-DVRANGE_ABI=VRANGE_ABI_{abi.upper()}"


def repo_root(root=None):
    """The repository checkout holding native/: `root` if given, else the
    checkout this module is in.

    Returns a Path; raises FileNotFoundError if it has no native/include/vrange.h
    (e.g. this module is an installed copy and no root was given)."""
    path = Path(root).resolve() if root is not None else Path(__file__).resolve().parents[1]
    if not (path / INCLUDE / "vrange.h").is_file():
        where = "" if root is not None else " (this vrangeemu is not in a checkout: pass root=)"
        raise FileNotFoundError(f"{path / INCLUDE / 'vrange.h'} not found{where}")
    return path


def include_dir(root=None):
    """The directory of vrange.h (native/include of the checkout, see
    repo_root()); returns a Path."""
    return repo_root(root) / INCLUDE


def include_flag(root=None):
    """The -I flag for vrange.h; returns e.g. '-I/src/vrangeemu/native/include'."""
    return f"-I{include_dir(root)}"


def command(sources, out, flags=DEFAULT_FLAGS, *, abi=None, include=True, shared=False,
            libs=(), root=None, cc=None):
    """The compiler's argv to build `sources` into `out`, without running it.

    flags: compiler options, first (e.g. ("-O2", "-Wall", "-Werror", "-pthread"));
    shared: a shared library (-shared -fPIC); include: add -I for vrange.h
    (see include_flag; root is the checkout); abi: add the define for that
    ABI (see abi_define; None: vrange.h's default); libs: after the sources
    (e.g. ("-ldl",)); cc: the compiler (default compiler()).

    Returns a list of strings:
    CC FLAGS [-shared -fPIC] [-I...] [-DVRANGE_ABI=...] -o OUT SOURCES... LIBS..."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    argv = [cc or compiler(), *flags]
    if shared:
        argv += ["-shared", "-fPIC"]
    if include:
        argv.append(include_flag(root))
    if abi is not None:
        argv.append(abi_define(abi))
    return [*argv, "-o", str(out), *map(str, sources), *libs]


def build(sources, out, flags=DEFAULT_FLAGS, *, abi=None, include=True, shared=False,
          libs=(), root=None, cc=None):
    """Compile `sources` (a path or a list of paths) into `out` (see command()
    for the options).  The compiler's messages go to this process's stderr.

    Returns str(out); raises subprocess.CalledProcessError if the compiler
    fails, CompilerNotFound if there is none."""
    subprocess.run(command(sources, out, flags, abi=abi, include=include, shared=shared,
                           libs=libs, root=root, cc=cc), check=True)
    return str(out)
