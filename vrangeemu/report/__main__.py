"""python3 -m vrangeemu.report: the vrange-report command."""
import sys

from .cli import main

sys.exit(main())
