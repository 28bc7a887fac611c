"""The ``torchlogit`` command's entry point.

Ctrl-C must end the program quietly with exit code 130 at any moment. During
a command typer sees to that; but loading the CLI imports torch, scikit-learn
and scipy (a second or two), and a KeyboardInterrupt raised inside those
imports surfaces as whatever the half-imported library makes of it (seen:
ImportError, RecursionError, tracebacks of 60 lines). So while the CLI loads,
SIGINT ends the process at once: nothing has been written yet, so there is
nothing to clean up. Only the standard library is imported here.
"""

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def _quit_quietly(signum, frame):
    os._exit(EXIT_INTERRUPTED)


def run():
    quiet_start = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not when SIGINT is ignored
    if quiet_start:
        signal.signal(signal.SIGINT, _quit_quietly)
    try:
        from .cli import main
    finally:
        if quiet_start:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)
