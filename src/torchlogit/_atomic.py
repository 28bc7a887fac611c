"""Writing a file so that the target is always either the old file or the complete new one.

    atomic_write_bytes(path, data)   # temporary file in the same folder, fsync, rename
    check_writable(path)             # before a long job: will that write succeed?

Everything the CLI writes (models, predictions, figures, checkpoints) goes
through here, so every write has the same guarantees and the same one-line
errors naming the user's path, never the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from pathlib import Path


class _Terminated(BaseException):
    """A terminating signal arrived while our temporary file existed."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise _Terminated(signum)


@contextlib.contextmanager
def _signals_raise():
    """Within this block, SIGTERM and SIGINT whose action is to kill the process
    outright (SIG_DFL) raise ``_Terminated`` instead, so the caller can remove its
    temporary file first. Handlers someone else installed are left alone: a
    Python handler (KeyboardInterrupt for SIGINT) runs inside our ``try`` anyway,
    and an ignored signal changes nothing. Python only lets the main thread set
    handlers, so other threads get no protection (as after SIGKILL)."""
    changed = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) == signal.SIG_DFL:
                changed[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, previous in changed.items():
            signal.signal(signum, previous)


class OutputError(OSError):
    """A file cannot be written where the user asked (folder missing, read-only, a folder in the way, disk full).

    One line naming the user's path, never the temporary file; ``errno`` is
    the operating system's. The CLI exits with code 8.
    """

    def __str__(self):  # the message alone, without OSError's "[Errno N]" prefix
        return self.strerror


def _write_error(path: Path, exc: OSError) -> OutputError:
    """``exc`` as an OutputError in one line naming the user's path."""
    folder = path.parent
    if isinstance(exc, FileNotFoundError) and not folder.is_dir():
        reason = f"folder '{folder}' does not exist"
    elif isinstance(exc, NotADirectoryError):
        reason = f"'{folder}' is not a folder"
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a folder"
    elif isinstance(exc, PermissionError):
        reason = f"no permission to write in folder '{folder}'"
    else:
        reason = exc.strerror or str(exc)
    return OutputError(exc.errno, f"{path}: cannot write: {reason}")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The target is always either the old file or the complete new one. On an
    error, and on SIGTERM or SIGINT (in the main thread), the temporary file
    ``.NAME.<random>.tmp`` next to the target is removed first; then the
    signal takes its usual course (the process ends, or KeyboardInterrupt).
    After SIGKILL, a power loss, ``os._exit``, or a signal to a write running
    outside the main thread, that temporary file can remain as an orphan next to
    the target; the target itself is never damaged. Such an orphan is safe to
    delete.

    A missing or read-only folder, or a path that is a folder, raises
    :class:`OutputError` with a one-line message naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        with _signals_raise():
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            umask = os.umask(0)
            os.umask(umask)
            # mkstemp creates 0600; give the file the mode a plain open() would (or the old file's)
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask
            # (a signal between mkstemp's return and this assignment, a few bytecodes, leaves an orphan)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                os.chmod(tmp, mode)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            tmp = None
    except _Terminated as exc:  # the handlers are restored by now
        _remove(tmp)
        signal.raise_signal(exc.signum)  # the default action again: the process ends as the signal asked
        raise SystemExit(128 + exc.signum) from None  # only if something still ignores it
    except OSError as exc:
        _remove(tmp)
        raise _write_error(path, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):  # the error that brought us here matters more
            Path(tmp).unlink(missing_ok=True)


def check_writable(path) -> None:
    """Raise the error ``atomic_write_bytes(path, ...)`` would raise, now, before a long job.

    Creates and removes a temporary file in the target's folder (the same
    call the write will make), so permissions, read-only file systems and
    ACLs are all tested for real; an existing target is left untouched.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _write_error(path, exc) from exc
