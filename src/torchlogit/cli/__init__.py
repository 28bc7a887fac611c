"""The `torchlogit` command: thin typer verbs over library calls (one file each)."""

from __future__ import annotations

import os

import typer

from .._atomic import OutputError
from .._checkpoint import CheckpointError
from .._inference import InferenceError
from .._io import ModelFileError
from ..data import DataError
from ..datasets import DownloadError
from ..distributed import DistributedError
from . import _common
from .datasets import app as datasets_app
from .demo import demo
from .evaluate import evaluate
from .plot import plot
from .predict import predict
from .report import report
from .summary import summary
from .train import train

app = typer.Typer(
    name="torchlogit",
    help="Logistic regression done right, on PyTorch. " + _common.EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (demo, train, evaluate, predict, plot, summary, report):
    app.command()(command)
app.add_typer(datasets_app, name="datasets")


def main(argv=None) -> int:
    """Entry point: run the app and map errors to one line and an exit code."""
    try:  # standalone mode: typer handles --help and usage errors (exit 2) itself
        app(args=argv, prog_name="torchlogit")
        code = _common.EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # Ctrl-C: quiet, as the shell expects (typer does the same during a command)
        code = _common.EXIT_INTERRUPTED
    except OutputError as exc:
        code = _report(exc, _common.EXIT_OUTPUT)
    except (DataError, InferenceError, FileNotFoundError, IsADirectoryError) as exc:
        code = _report(exc, _common.EXIT_DATA)
    except (ModelFileError, CheckpointError) as exc:
        code = _report(exc, _common.EXIT_MODEL)
    except DownloadError as exc:
        code = _report(exc, _common.EXIT_NETWORK)
    except DistributedError as exc:
        code = _report(exc, _common.EXIT_DISTRIBUTED)
    except (ValueError, TypeError, NotImplementedError, PermissionError) as exc:
        code = _report(exc, _common.EXIT_INVALID)
    except Exception as exc:  # a bug: still one line, with how to see the traceback
        if os.environ.get("TORCHLOGIT_DEBUG"):
            raise
        code = _report(exc, _common.EXIT_INTERNAL, hint=" (internal error; set TORCHLOGIT_DEBUG=1 for the traceback)")
    return code


def _report(exc, code, hint=""):
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    _common.report_error(message + hint)
    return code
