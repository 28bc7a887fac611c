"""`torchlogit train`: fit on a table, report, save the model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from .. import LogisticRegression
from .._svmlight import is_svmlight
from ..data import DataError
from ..metrics import evaluate
from ._common import DATA_DIR_HELP, convergence_record, image_set, load_xy, out, output_path, progress
from ._train_cv import train_cv

SGD_IMAGE_EPOCHS = 10  # an image data set's epoch is thousands of mini-batch steps
PENALTY_HELP = (
    "l2 (the default), l1, elasticnet (with --l1-ratio) or none. Without --penalty, --l1-ratio alone "
    "picks the kind as scikit-learn 1.8 does: 0 is l2, 1 is l1, in between elastic net."
)


def train(
    data: str = typer.Argument(
        ...,
        help=(
            "CSV or Parquet file, an svmlight/libsvm file (.svm, .svmlight, .libsvm, also .gz/.bz2: "
            "its labels are the target), a built-in table (hours, breast-cancer, digits, iris), "
            "or an image data set (mnist, fashion-mnist, cifar10) with --data-dir."
        ),
    ),
    target: str = typer.Option(None, help="Target column (built-in data sets know theirs)."),
    features: str = typer.Option(None, help="Comma-separated feature columns (default: all but the target)."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    model_out: Path = typer.Option(None, "--model-out", help="Where to save the fitted model (.safetensors)."),
    penalty: str = typer.Option(None, help=PENALTY_HELP),
    l1_ratio: float = typer.Option(
        None, "--l1-ratio", help="Elastic net's L1 share r in [0, 1]: penalty (r ||w||_1 + (1 - r) 0.5 ||w||^2) / C."
    ),
    C: float = typer.Option(
        1.0, "--C", help="Inverse penalty strength: 0.5 ||w||^2 / C (l2), ||w||_1 / C (l1); smaller C, more zeros."
    ),
    solver: str = typer.Option("auto", help="auto, newton, lbfgs, prox-newton (l1, elastic net) or sgd."),
    max_iter: int = typer.Option(1000, help="Iterations of the exact solvers."),
    tol: float = typer.Option(None, help="Tolerance (default 1e-6 on the gradient; sgd: on the epoch loss)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(32, help="sgd: mini-batch size."),
    epochs: int = typer.Option(
        None, help=f"sgd: epochs (default: --max-iter on tables, {SGD_IMAGE_EPOCHS} on image data sets)."
    ),
    learning_rate: float = typer.Option(0.01, help="sgd: step size."),
    optimizer: str = typer.Option("sgd", help="sgd: a torch.optim optimizer name (sgd, adam, ...)."),
    random_state: int = typer.Option(None, help="sgd: seed of the mini-batch order."),
    one_hot: bool = typer.Option(False, "--one-hot", help="Expand string feature columns into 0/1 columns."),
    stream: bool = typer.Option(
        False, "--stream", help="Read DATA (Parquet file or folder, or CSV) in record batches: bounded memory."
    ),
    distributed: bool = typer.Option(
        False, "--distributed", help="Under torchrun: each rank streams its shard; implies --stream."
    ),
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        help="--stream: write the fit's state to this file every "
        "--checkpoint-every seconds, on Ctrl-C/SIGTERM and at the end.",
    ),
    checkpoint_every: float = typer.Option(60.0, "--checkpoint-every", help="Seconds between checkpoints."),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="--stream: continue the run saved in this checkpoint (same data "
        "and options); checkpoints go on to the same file unless --checkpoint is given.",
    ),
    cv: int = typer.Option(
        None, "--cv", help="Choose C by K-fold cross-validation (log-loss), refit on all rows; see --Cs, --l1-ratios."
    ),
    Cs: int = typer.Option(10, "--Cs", help="--cv: how many C, log-spaced from 1e-4 to 1e4."),
    l1_ratios: str = typer.Option(
        None, "--l1-ratios", help="--cv: comma-separated elastic-net mixes to choose from too, e.g. 0.1,0.5,0.9."
    ),
    selection: str = typer.Option(
        "min", help="--cv: min (the best mean score) or 1se (the smallest C within one standard error of it)."
    ),
):
    """Fit a logistic regression on DATA and save it.

    Image data sets train on the train split and report the test split's accuracy.

    Example: torchlogit train breast-cancer --model-out bc.safetensors

    Sparse text, L1: torchlogit train docs.svm --penalty l1 --C 0.5 --model-out docs.safetensors

    C by 5-fold cross-validation: torchlogit train breast-cancer --cv 5 --selection 1se --model-out bc.safetensors

    On an image data set: torchlogit train mnist --data-dir data --model-out mnist.safetensors
    """
    if cv is not None:
        if stream or distributed or checkpoint is not None or resume is not None:
            raise ValueError("--cv fits in memory: drop --stream, --distributed, --checkpoint and --resume")
        if l1_ratio is not None:
            raise ValueError("--cv chooses the mix: give --l1-ratios R1,R2,... instead of --l1-ratio")
        return train_cv(data, target, features, data_dir, model_out, penalty, solver, max_iter, tol, device,
                        one_hot, cv, Cs, l1_ratios, selection)  # fmt: skip
    penalty, l1_ratio = penalty_params(penalty, l1_ratio)
    if stream or distributed:
        if is_svmlight(data):
            raise DataError(f"{data}: --stream reads CSV or Parquet; an svmlight file is read whole (drop --stream)")
        return _train_stream(
            data,
            target,
            features,
            model_out,
            penalty,
            l1_ratio,
            C,
            solver,
            max_iter,
            tol,
            epochs,
            batch_size,
            learning_rate,
            optimizer,
            random_state,
            distributed,
            checkpoint or resume,
            checkpoint_every,
            resume,
        )
    if checkpoint is not None or resume is not None:
        raise ValueError("--checkpoint and --resume work with --stream (give the data as a Parquet/CSV file or folder)")
    output_path(model_out)  # a fit of minutes must not end in "cannot write"
    images = image_set(data, data_dir)
    if images is not None:
        X, y = images.X_train, images.y_train
        epochs = epochs or SGD_IMAGE_EPOCHS
    else:
        names = [f.strip() for f in features.split(",")] if features else None
        X, y, _ = load_xy(data, target, names, one_hot=one_hot)
    max_iter = epochs if (solver == "sgd" and epochs is not None) else max_iter
    model = LogisticRegression(
        penalty=penalty,
        l1_ratio=l1_ratio,
        C=C,
        solver=solver,
        max_iter=max_iter,
        tol=tol,
        device=device,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        random_state=random_state,
    )
    start = time.perf_counter()
    with convergence_record() as warnings_, progress(max_iter, f"training ({solver})") as callback:
        model.fit(X, y, callback=callback)
    elapsed = time.perf_counter() - start
    scores = evaluate(model, X, y)
    if model_out is not None:
        model.save(model_out)
    if warnings_:
        status = "NOT converged: " + warnings_[0]
    elif model.solver_ == "sgd" and tol is None:
        status = "ran every epoch (no --tol given)"
    else:
        status = "converged"
    sparsity = ""
    if penalty in ("l1", "elasticnet") and l1_ratio > 0:  # an L1 part sets coefficients to exactly 0
        sparsity = f"; {np.count_nonzero(model.coef_):,} of {model.coef_.size:,} coefficients non-zero"
    if images is None and not hasattr(X, "columns"):  # an svmlight file's CSR matrix
        n, d = X.shape
        out.print(f"data: {n:,} examples x {d:,} features, {X.nnz / max(n * d, 1):.3%} non-zero (sparse)")
    out.print(f"solver {model.solver_}: {model.n_iter_[0]} iterations, {status}{sparsity}")
    out.print(f"train accuracy {scores['accuracy']:.4f}, log-loss {scores['log_loss']:.4f}, time {elapsed:.2f} s")
    if images is not None:
        test = evaluate(model, images.X_test, images.y_test)
        out.print(f"test accuracy {test['accuracy']:.4f} on {len(images.y_test)} {images.name} test images")
    out.print(f"saved {model_out}" if model_out is not None else "model not saved (no --model-out)")


def _train_stream(
    data,
    target,
    features,
    model_out,
    penalty,
    l1_ratio,
    C,
    solver,
    max_iter,
    tol,
    epochs,
    batch_size,
    learning_rate,
    optimizer,
    random_state,
    distributed=False,
    checkpoint=None,
    checkpoint_every=60.0,
    resume=None,
):
    """`train --stream [--distributed]`: a progress bar with rows/s and the objective; under
    torchrun only rank 0 draws, prints and writes the model."""
    from ..distributed import fit_distributed, is_rank_zero
    from ..stream import fit_stream

    fit = fit_distributed if distributed else fit_stream
    leader = not distributed or is_rank_zero()
    if leader:
        output_path(model_out)
        output_path(checkpoint)

    if target is None:
        raise DataError(f"{data}: --stream needs --target COLUMN")
    solver = "auto" if solver == "newton" else solver  # fit_stream: lbfgs, or prox-newton with an L1 part
    total = (epochs or 5) if solver == "sgd" else max_iter
    names = [f.strip() for f in features.split(",")] if features else None
    start = time.perf_counter()
    with convergence_record() as warnings_, progress(total, f"streaming ({solver})", enabled=leader) as callback:
        model = fit(
            data,
            target,
            features=names,
            penalty=penalty,
            l1_ratio=l1_ratio,
            C=C,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
            epochs=epochs or 5,
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            random_state=random_state,
            callback=callback,
            **({} if checkpoint is None else {"checkpoint": checkpoint, "checkpoint_every": checkpoint_every}),
            **({} if resume is None else {"resume": resume}),
        )
    elapsed = time.perf_counter() - start
    if not leader:
        return
    if model_out is not None:
        model.save(model_out)
    report = model.convergence_
    status = "converged" if report.converged else f"NOT converged: {report.message}"
    out.print(
        f"solver {model.solver_} (streaming): {report.n_iter} iterations, {status}"
        + (f" ({warnings_[0]})" if warnings_ else "")
    )
    out.print(f"objective {report.objective:.8g}, {model.stream_rows_per_s_:,.0f} rows/s, time {elapsed:.2f} s")
    out.print(_files_read(model.stream_files_, model.stream_skipped_))
    out.print(f"saved {model_out}" if model_out is not None else "model not saved (no --model-out)")


def _files_read(files, skipped, show=3):
    """'read 2 data files (a.parquet, b.parquet); skipped 1 (_SUCCESS)': what a folder gave the fit."""

    def names(paths):
        shown = ", ".join(Path(p).name for p in paths[:show])
        return shown + (f", ... {len(paths) - show} more" if len(paths) > show else "")

    line = f"read {len(files)} data file{'s' if len(files) != 1 else ''} ({names(files)})"
    return line + (f"; skipped {len(skipped)} ({names(skipped)})" if skipped else "")


def penalty_params(penalty, l1_ratio):
    """(penalty, l1_ratio) for LogisticRegression from --penalty and --l1-ratio, contradictions refused.

    penalty None for 'none'. Without --penalty, l1_ratio alone decides the kind (scikit-learn 1.8's
    rule); 'l1' is l1_ratio 1 and 'l2' is 0, so another --l1-ratio with them is refused rather than
    ignored with a warning, as scikit-learn does; 'elasticnet' needs an --l1-ratio.
    """
    if l1_ratio is not None and not 0 <= l1_ratio <= 1:  # also NaN
        raise ValueError(f"--l1-ratio must be between 0 and 1, got {l1_ratio}")
    kind = None if penalty is None else penalty.lower()
    if kind is None:
        r = 0.0 if l1_ratio is None else float(l1_ratio)
        return ("l2" if r == 0 else "l1" if r == 1 else "elasticnet"), r
    if kind == "elasticnet":
        if l1_ratio is None:
            raise ValueError("--penalty elasticnet needs --l1-ratio R (the L1 share, between 0 and 1)")
        return kind, float(l1_ratio)
    if kind not in ("l1", "l2", "none"):
        raise ValueError(f"--penalty must be l2, l1, elasticnet or none, got {penalty!r}")
    implied = {"l1": 1.0, "l2": 0.0, "none": None}[kind]
    if l1_ratio is not None and l1_ratio != implied:
        wanted = "takes no --l1-ratio" if kind == "none" else f"is --l1-ratio {implied:g}"
        raise ValueError(f"--penalty {kind} {wanted}, not {l1_ratio:g}; for a mix use --penalty elasticnet")
    return (None, 0.0) if kind == "none" else (kind, implied)
