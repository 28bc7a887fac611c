"""``python -m torchlogit ...``: the same command as ``torchlogit ...``."""

from ._console import run

if __name__ == "__main__":
    run()
