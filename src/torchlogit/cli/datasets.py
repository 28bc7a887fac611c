"""`torchlogit datasets download|info`: fetch and check MNIST, Fashion-MNIST, CIFAR-10."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from .. import datasets as ds
from ._common import EXIT_DATA, err, fail, out

app = typer.Typer(help="Fetch and check the image data sets (mnist, fashion-mnist, cifar10).", no_args_is_help=True)


@app.command()
def download(
    name: str = typer.Argument(..., help="mnist, fashion-mnist or cifar10."),
    directory: Path = typer.Option(Path("data"), "--dir", help="Folder to download into (files go to DIR/NAME/)."),
):
    """Download a data set from its publishers' mirrors, checksums verified; resumes a broken download.

    Example: torchlogit datasets download mnist --dir data
    """
    spec = ds.get_spec(name)
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=err, disable=not err.is_terminal) as bar:
        tasks = {}

        def progress(file_name, done, total):
            if file_name not in tasks:
                tasks[file_name] = bar.add_task(file_name, total=total)
            bar.update(tasks[file_name], completed=done)

        paths = ds.download(spec, directory, progress=progress)
    for path in paths:
        out.print(f"ok {path}")
    out.print(f"{spec.title}: {len(paths)} files in {paths[0].parent}, md5 verified")


@app.command()
def info(directory: Path = typer.Argument(..., metavar="DIR", help="A folder holding one or more data sets.")):
    """Verify the checksums of the data-set files found in DIR (exit code 3 when one is wrong).

    Example: torchlogit datasets info data
    """
    if not directory.is_dir():
        fail(f"{directory}: no such folder", EXIT_DATA)
    lines, found, bad = [], 0, 0
    for spec in ds.SPECS.values():
        checks = ds.verify(spec, directory)
        # DIR/NAME/ is reported in full; files right in DIR (MNIST and Fashion-MNIST share
        # file names) count as this data set only when one of them has its checksum.
        if not (directory / spec.name).is_dir() and not any(c.status == "ok" for c in checks):
            continue
        for check in checks:
            lines.append(f"{check.status:<13} {spec.name}/{check.name}  {check.detail}")
            found += check.status != "missing"
            bad += check.status != "ok"
    if not found:
        fail(f"{directory}: no MNIST, Fashion-MNIST or CIFAR-10 files found", EXIT_DATA)
    for line in lines:  # one line per file, full md5 sums: easy to grep and to compare
        out.print(line, highlight=False)
    if bad:
        fail(f"{bad} file(s) missing or not matching the published checksums", EXIT_DATA)
