"""The package's version, for `vrange-run --version` and `vrange-report --version`.

The installed distribution's metadata says it, when that distribution is
this copy of the package; a source tree (run with PYTHONPATH, next to an
older install or none) says it in its setup.cfg.
"""
import argparse
import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def version():
    """'0.1.0' or the like; 'unknown' if neither source says."""
    installed = _installed_version()
    if installed:
        return installed
    import configparser
    cfg = configparser.ConfigParser()
    try:
        cfg.read(os.path.join(os.path.dirname(_PACKAGE_DIR), "setup.cfg"))
        return cfg.get("metadata", "version")
    except (configparser.Error, OSError):
        return "unknown"


def _installed_version():
    """The metadata's version if the installed vrangeemu is this very package."""
    from importlib import metadata
    try:
        dist = metadata.distribution("vrangeemu")
        here = os.path.realpath(dist.locate_file(os.path.join("vrangeemu", "__init__.py")))
    except (metadata.PackageNotFoundError, OSError, TypeError):
        return None
    if here != os.path.realpath(os.path.join(_PACKAGE_DIR, "__init__.py")):
        return None
    return dist.version


class VersionAction(argparse.Action):
    """--version: prints "PROG VERSION" and exits 0 (the version is looked up
    only then, not on every run)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, help="print the version and exit"):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {version()}")
        parser.exit()
