"""`torchlogit demo`: the lecture, end to end."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from .. import LinearRegression, LogisticRegression
from ..lecture import HOURS, PASSED, POINTS, separated_1d, train_lecture_model
from ..plotting import probability_curve, save_figure
from ._common import out, output_path


def demo(
    out_dir: Path = typer.Option(Path("."), "--out", help="Folder for probability_of_pass.png."),
    epochs: int = typer.Option(1000, help="Epochs of the lecture's SGD loop."),
    learning_rate: float = typer.Option(0.01, help="SGD step size."),
):
    """Replay the lecture: hours studied -> pass/fail, trained with SGD, then solved exactly.

    Example: torchlogit demo --out results/
    """
    output_path(out_dir, folder=True)
    out.rule("The lecture: hours studied -> pass (x = 1, 2, 3; y = 0, 0, 1)")
    out.print(f"Linear(1, 1) + sigmoid, summed BCE, SGD lr={learning_rate}, {epochs} epochs")

    def report(epoch, loss):
        if epoch % 100 == 0:
            out.print(f"  epoch {epoch:5d}   loss {loss:.4f}")

    run = train_lecture_model(epochs=epochs, learning_rate=learning_rate, callback=report)
    p4 = float(run.proba([4.0])[0])
    out.print(f"learned w = {run.w:.4f}, b = {run.b:.4f};  P(pass | 4 hours) = {p4:.4f}")

    out.rule("The exact solver on the same data")
    if separated_1d(HOURS, PASSED):
        failed, passed = HOURS[PASSED == 0].max(), HOURS[PASSED == 1].min()
        out.print(
            "Without a penalty the exact optimum does not exist: the classes are perfectly separated "
            f"(everyone with <= {failed:g} hours failed, everyone with >= {passed:g} passed), so the "
            "likelihood keeps rising as w -> infinity. The default L2 penalty (C=1) makes the optimum unique:"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = LogisticRegression().fit(HOURS, PASSED)  # the default L2 penalty, C = 1
    pe = float(exact.predict_proba([[4.0]])[0, 1])
    out.print(
        f"LogisticRegression() (L2, C=1): w = {exact.coef_[0, 0]:.4f}, b = {exact.intercept_[0]:.4f}, "
        f"P(pass | 4 hours) = {pe:.4f}  ({exact.solver_}, {exact.n_iter_[0]} iterations)"
    )

    out.rule("Revision: linear regression, hours -> points (2, 4, 6)")
    reg = LinearRegression().fit(HOURS, POINTS)
    out.print(
        f"points = {reg.coef_[0]:.4f} * hours {round(reg.intercept_, 4) + 0.0:+.4f};  "
        f"prediction at 4 hours: {reg.predict([[4.0]])[0]:.1f}"
    )

    path = out_dir / "probability_of_pass.png"
    fig = probability_curve(run.proba, HOURS, PASSED, title=f"Lecture model after {epochs} epochs of SGD")
    save_figure(fig, path)
    out.print(f"wrote {path}")
