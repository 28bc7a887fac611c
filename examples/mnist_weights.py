"""
MNIST weight templates
======================

A multinomial logistic regression on handwritten digits has one weight per
pixel and class: drawn as an image, each class's ``coef_`` row is a template
of where ink raises (red) or lowers (blue) that class's logit.

The example reads the original MNIST files from ``../shared/datasets/mnist``
next to the repository (the copy the tests use; ``torchlogit datasets download
mnist --dir DIR`` fetches one) and fits on the first 10,000 training images to
keep the documentation build short (the whole set: 92.56 % test accuracy, see
the performance page). Where that copy is absent the example still runs, on
scikit-learn's bundled 8 x 8 digits, and says so in its output.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from torchlogit import LogisticRegression
from torchlogit.datasets import load
from torchlogit.plotting import samples, weights

try:
    repo = Path(__file__).resolve().parents[1]  # examples/ is in the repository
except NameError:  # sphinx-gallery runs the example in examples/ without __file__
    repo = Path.cwd().parent
mnist_dir = repo.parent / "shared" / "datasets" / "mnist"

if mnist_dir.is_dir():
    data = load("mnist", mnist_dir.parent)  # float32 pixels in [0, 1], int64 labels
    X_train, y_train = data.X_train[:10_000], data.y_train[:10_000]
    X_test, y_test = data.X_test, data.y_test
    image_shape, class_names = data.image_shape, data.class_names
    print(f"MNIST from {mnist_dir}: {len(X_train):,} training images of {data.X_train.shape[0]:,}")
else:
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # 8 x 8 pixels, 0..16 -> [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    image_shape, class_names = (8, 8), tuple(str(k) for k in range(10))
    print(f"no MNIST copy at {mnist_dir}: scikit-learn's bundled 8 x 8 digits instead")

# %%
# Fit
# ---
# Ten classes: a true multinomial softmax (not one-vs-rest), L2 with C = 1,
# solved exactly; ``solver_`` says which solver ``auto`` chose.
clf = LogisticRegression(C=1.0).fit(X_train, y_train)
print(f"solver {clf.solver_}, {clf.n_iter_[0]} iterations, duality gap {clf.convergence_.duality_gap:.1e}")
print(f"test accuracy {clf.score(X_test, y_test):.4f} on {len(X_test):,} images")

# %%
# The templates
# -------------
# One shared, symmetric colour scale, so the templates compare.
fig = weights(clf.coef_, image_shape, class_names)

# %%
# Test images with their predicted labels, wrong ones in red.
fig = samples(X_test, y_test, clf.predict(X_test), image_shape, class_names, n=24)
