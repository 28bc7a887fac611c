"""`torchlogit report` (issue 16): one self-contained HTML page, read as text and looked at in a real browser.

The browser tests need Debian's `chromium` (.ci/run installs it); without it they skip and say so.
"""

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from dataset_files import write_mnist

from torchlogit import LogisticRegression, datasets
from torchlogit.cli import main
from torchlogit.report import build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a browser would fetch or run: every URL attribute, the images, scripts, tables, section ids."""

    def __init__(self, text):
        super().__init__()
        self.urls, self.images, self.scripts, self.tables, self.ids = [], [], 0, 0, set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [(tag, k, v or "") for k, v in attrs.items() if k in ("src", "href", "srcset", "action", "data")]
        self.images += [attrs.get("src", "")] if tag == "img" else []
        self.scripts += tag == "script"
        self.tables += tag == "table"
        self.ids |= {attrs["id"]} if "id" in attrs else set()


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_self_contained(text):
    """No script, nothing fetched: every image a PNG data URI that decodes, no link out of the file."""
    page = Page(text)
    assert page.scripts == 0 and "<script" not in text.lower()
    for tag, attr, value in page.urls:
        assert value.startswith("data:image/png;base64,"), (tag, attr, value[:80])
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)
    assert not re.search(r"https?://|url\(|@import", text)  # no CDN, font or style sheet from elsewhere
    return page


def titles(text):
    return re.findall(r"<figcaption><b>(.*?)</b>", text)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The lecture's model and a `train --cv` model with their reports (made once: the CV fits take a second)."""
    folder = tmp_path_factory.mktemp("reports")
    made = {}
    for name, train, data in [
        ("hours", ["train", "hours"], "hours"),
        ("cv", ["train", "breast-cancer", "--cv", "3", "--Cs", "5"], "breast-cancer"),
    ]:
        model = folder / f"{name}.safetensors"
        assert main([*train, "--model-out", str(model)]) == 0
        out = folder / f"{name}.html"
        assert main(["report", str(model), data, "--out", str(out)]) == 0
        made[name] = out
    return made


def test_the_lecture_report_is_one_self_contained_page(reports):
    text = reports["hours"].read_text()
    page = assert_self_contained(text)
    assert {"card", "metrics", "summary", "pictures"} <= page.ids
    assert titles(text) == ["Probability curve", "ROC curve", "Calibration", "Confusion matrix", "Training loss"]
    assert "with its 95 % confidence band" in text  # the band of the summary, as plot --kind probability draws it
    card = text[text.index('id="card"') : text.index('id="metrics"')]
    for shown in ("hours.safetensors", "1: hours", "L2 (C = 1)", "newton", "converged", "duality gap"):
        assert shown in card
    assert 'class="grid coef"' in text and "<th>const</th>" in text and "<th>hours</th>" in text
    assert "Penalized fit (L2, C=1)" in text  # summary's own note travels with its table


def test_a_cv_model_adds_its_cross_validation_and_path(reports):
    text = reports["cv"].read_text()
    assert_self_contained(text)
    assert titles(text)[-2:] == ["Cross-validation", "Regularisation path"]
    assert "chosen by 3-fold cross-validation; duality gaps: largest of a fold&#x27;s fit" in text
    assert text.count("<tr><th>") >= 31  # breast cancer's 30 features and the constant in the table
    assert "ROC AUC" in text and "0.99" in text


def test_user_strings_are_escaped(tmp_path, capsys):
    """Feature names, class labels and the data file's name reach the page as text, never as markup."""
    evil = "<script>alert(1)</script>"
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    labels = np.where(x + rng.normal(size=60) > 0, "<b>yes</b>", "no & maybe")
    data = tmp_path / "<img src=x onerror=alert(2)>.csv"
    pd.DataFrame({evil: x, "label": labels}).to_csv(data, index=False)
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", data, "--target", "label", "--model-out", model)[0] == 0
    out = tmp_path / "r.html"
    assert run(capsys, "report", model, data, "--target", "label", "--out", out)[0] == 0
    text = out.read_text()
    page = assert_self_contained(text)
    assert evil not in text and "<b>yes" not in text and "<img src=x" not in text
    assert html.escape(evil) in text and "&lt;b&gt;yes&lt;/b&gt;" in text and "no &amp; maybe" in text
    assert "&lt;img src=x onerror=alert(2)&gt;.csv" in text
    assert len(page.images) == len(titles(text))  # the file's name made no image of its own


def test_the_table_is_left_out_with_a_reason():
    from sklearn.datasets import load_breast_cancer, load_digits

    X, y = load_digits(return_X_y=True)
    text = build_report(LogisticRegression().fit(X, y), X, y, model_name="d", data_name="digits")
    assert "Not shown: 585 parameters are more than a readable table holds" in text
    assert 'class="grid coef"' not in text
    X, y = load_breast_cancer(return_X_y=True)
    l1 = LogisticRegression(l1_ratio=1.0, C=0.1).fit(X, y)
    text = build_report(l1, X, y, model_name="m", data_name="bc")
    assert "Not shown: standard errors of an L1 or elastic-net fit are not defined" in text
    assert_self_contained(text)


def test_thousands_of_features_are_listed_in_part():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 2000)), columns=[f"f{j:04d}" for j in range(2000)])
    y = (X["f0000"] > 0).astype(int)
    text = build_report(LogisticRegression().fit(X, y), X, y, model_name="m", data_name="wide")
    card = text[text.index('id="card"') : text.index('id="metrics"')]
    assert "2,000: f0000, f0001" in card and "f1999" in card and "f1000" not in card and "&hellip;" in card
    assert "Not shown: 2,001 parameters" in text


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 5 iterations are enough to draw
def test_an_image_data_set_shows_weight_templates_and_samples(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=300, n_test=20)
    images = datasets.load("mnist", tmp_path)
    model = LogisticRegression(max_iter=5).fit(images.X_train, images.y_train)
    assert set(images.y_test) <= set(model.classes_)
    model.save(tmp_path / "m.safetensors")
    out = tmp_path / "r.html"
    code, _, err = run(capsys, "report", tmp_path / "m.safetensors", "mnist", "--data-dir", tmp_path, "--out", out)
    assert code == 0, err
    text = out.read_text()
    assert_self_contained(text)
    assert titles(text)[-2:] == ["Weight templates", "Sample images"]
    assert "784 pixels of 28 × 28 images" in text and "mnist test split" in text


def _cv_table_broken(model):
    model.with_suffix(".cv.json").write_text('{"C": [1.0]}')


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["{missing_model}", "hours"], 4, "no such model file"),
        (["{model}", "{tmp}/none.csv", "--target", "y"], 3, "none.csv"),
        (["{model}", "hours", "--target", "nope"], 3, "nope"),
        (["{model}", "mnist"], 3, "--data-dir"),
        (["{model}", "{unseen}", "--target", "pass"], 1, "not seen in training"),
        (["{model}", "{wide}", "--target", "pass"], 3, "hours"),
        (["{broken_cv}", "hours"], 4, "not a cross-validation table"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_out_file_alone(tmp_path, capsys, args, code, says):
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", "hours", "--model-out", model)[0] == 0
    broken = tmp_path / "b.safetensors"
    assert run(capsys, "train", "hours", "--model-out", broken)[0] == 0
    _cv_table_broken(broken)
    (tmp_path / "unseen.csv").write_text("hours,pass\n1,0\n2,7\n")
    (tmp_path / "wide.csv").write_text("sleep,pass\n1,0\n2,1\n")
    out = tmp_path / "report.html"
    out.write_text("the old report")
    names = {
        "missing_model": tmp_path / "nothing.safetensors",
        "model": model,
        "tmp": tmp_path,
        "unseen": tmp_path / "unseen.csv",
        "wide": tmp_path / "wide.csv",
        "broken_cv": broken,
    }
    got, stdout, err = run(capsys, "report", *[a.format(**names) for a in args], "--out", out)
    assert got == code, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and says in err, err
    assert "Traceback" not in err and stdout == ""
    assert out.read_text() == "the old report"
    assert not list(tmp_path.glob(".report.html.*"))  # no temporary left behind


@pytest.mark.parametrize("where", ["missing/report.html", "a-folder", "file.txt/report.html"])
def test_an_unwritable_out_is_refused_before_anything_is_read(tmp_path, capsys, where):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    # neither the model nor the data exists: exit 8 (not 4 or 3) shows the output is checked first
    code, out, err = run(capsys, "report", tmp_path / "no.safetensors", tmp_path / "no.csv", "--out", tmp_path / where)
    assert code == 8 and out == "" and len(err.strip().splitlines()) == 1 and "cannot write" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "file.txt"]


def test_report_is_listed_in_the_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "report" in out
    code, out, _ = run(capsys, "report", "--help")
    assert code == 0 and "--out" in out and "Example: torchlogit report" in out


# ------------------------------------------------------------------ in a real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)"
)

# Only the test's copy of the page carries this: the shipped report has no script.
CHECK = """<script>
// At the window's load event every image has loaded or failed, so the check runs synchronously there:
// a promise (image.decode()) could settle after Chromium's --dump-dom, which then lacked the result.
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var table = document.querySelector("#summary table.coef");
  // an image counts when the browser decoded it and its pixels are not all one value
  var decoded = images.map(function (image) {
    if (!image.complete || image.naturalWidth === 0) { return 0; }
    var canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    var context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    var data = context.getImageData(0, 0, canvas.width, canvas.height).data, lo = 255, hi = 0;
    for (var k = 0; k < data.length; k += 4) { lo = Math.min(lo, data[k]); hi = Math.max(hi, data[k]); }
    return hi > lo ? 1 : 0;
  });
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({
    images: images.length,
    decoded: decoded.reduce(function (a, b) { return a + b; }, 0),
    rows: table ? table.querySelectorAll("tr").length : 0,
    height: table ? table.getBoundingClientRect().height : 0
  });
  document.body.appendChild(out);
});
</script>
"""


def chromium(tmp_path, *args):
    """Headless Chromium with everything that would reach for the network switched off (the machine is offline)."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
@pytest.mark.parametrize("name", ["hours", "cv"])
def test_the_report_renders_in_chromium(reports, tmp_path, name):
    from matplotlib.image import imread

    page = reports[name]
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    pixels = imread(shot)[..., :3]  # (H, W, 3) in [0, 1]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.1  # not blank
    assert (pixels.min(axis=2) < 0.9).mean() > 0.05  # a fair share of the page is ink, not background

    check = browser_check(tmp_path, page.read_text())
    assert check["images"] == len(Page(page.read_text()).images) >= 5
    assert check["decoded"] == check["images"]  # every picture decoded by the browser
    assert check["rows"] >= 3 and check["height"] > 50  # the coefficient table is there and laid out


def browser_check(tmp_path, text):
    """What CHECK finds when Chromium loads a copy of the page with it injected."""
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", CHECK + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    return json.loads(html.unescape(found.group(1)))


@needs_chromium
def test_the_browser_check_sees_a_damaged_image(reports, tmp_path):
    """The check above is not vacuous: a picture whose PNG header is damaged is counted as not decoded."""
    text = reports["hours"].read_text()
    start = text.index("data:image/png;base64,", text.index("data:image/png;base64,") + 1) + len(
        "data:image/png;base64,"
    )
    check = browser_check(tmp_path, text[:start] + "A" * 12 + text[start + 12 :])
    assert check["images"] == 5 and check["decoded"] == 4
