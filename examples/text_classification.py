"""
Text classification on sparse tf-idf data
=========================================

Documents become rows of a sparse tf-idf matrix with one column per word;
an L1 penalty keeps few of them. torchlogit takes the scipy CSR matrix as it
is (never densified or centred) and solves the L1 problem exactly with
``prox-newton``.

The corpus is generated here, so the build needs no network (scikit-learn's
``fetch_20newsgroups`` downloads its data): three topics, 5,000 words with
Zipf frequencies shared by all documents, and 24 words per topic that
documents of that topic use more often. A good sparse model keeps the topic
words and drops the rest.
"""

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.model_selection import train_test_split

from torchlogit import LogisticRegression

rng = np.random.default_rng(0)
topics = {
    "sport": "match goal team league coach season score player keeper stadium referee cup "
    "striker final derby pitch tackle penalty fans transfer injury squad trophy winger",
    "science": "cell protein theory quantum genome lab neuron orbit enzyme molecule data "
    "experiment telescope climate species fossil particle vaccine gene sample physics chemistry "
    "model neutron",
    "finance": "market stock bond bank rate inflation fund profit shares investor dividend "
    "currency loan credit debt tax revenue budget equity trader yield merger audit pension",
}
topic_words = {name: words.split() for name, words in topics.items()}
n_background = 5000 - sum(len(w) for w in topic_words.values())
vocabulary = [f"w{j:04d}" for j in range(n_background)] + [w for ws in topic_words.values() for w in ws]
background = 1.0 / np.arange(1, n_background + 1) ** 1.1  # Zipf frequencies
background /= background.sum()

# %%
# The corpus
# ----------
# Each document has 40 to 120 tokens, 96 % from the background words and 4 %
# from its topic's words; rows are word counts, then tf-idf (scikit-learn's
# ``TfidfTransformer``, as ``TfidfVectorizer`` would give on real text).
n_docs = 3000
labels = rng.integers(0, len(topics), n_docs)
offsets = {name: vocabulary.index(ws[0]) for name, ws in topic_words.items()}
rows, cols = [], []
for i, label in enumerate(labels):
    name = list(topics)[label]
    n_tokens = rng.integers(40, 121)
    n_topic = rng.binomial(n_tokens, 0.04)
    words = np.concatenate(
        [
            rng.choice(n_background, n_tokens - n_topic, p=background),
            offsets[name] + rng.integers(0, len(topic_words[name]), n_topic),
        ]
    )
    rows.append(np.full(len(words), i))
    cols.append(words)
counts = sp.csr_matrix(
    (np.ones(sum(len(c) for c in cols)), (np.concatenate(rows), np.concatenate(cols))),
    shape=(n_docs, len(vocabulary)),
)  # duplicates are summed: word counts
X = TfidfTransformer().fit_transform(counts).astype(np.float32)  # scipy CSR, (3000, 5000)
y = np.array(list(topics))[labels]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
print(f"{X.shape[0]:,} documents x {X.shape[1]:,} words, {X.nnz / np.prod(X.shape):.2%} non-zero ({type(X).__name__})")

# %%
# L1 against L2
# -------------
# Same data and C; ``l1_ratio=1.0`` (or ``penalty="l1"``) is the lasso. The
# multinomial L1 penalty acts on every class's coefficient separately.
for l1_ratio, C in [(0.0, 1.0), (1.0, 1.0), (1.0, 0.3)]:
    clf = LogisticRegression(l1_ratio=l1_ratio, C=C).fit(X_train, y_train)
    kept = int(np.any(clf.coef_ != 0, axis=0).sum())
    print(
        f"l1_ratio {l1_ratio:.0f}, C {C:4.1f}: solver {clf.solver_:11s} test accuracy {clf.score(X_test, y_test):.3f}, "
        f"{kept:,} of {X.shape[1]:,} words used"
    )

# %%
# The words the sparse model kept
# -------------------------------
# The last model (L1, C = 0.3): each topic's largest coefficients. They are its
# topic words; the background words, shared by all topics, are dropped.
fig, axes = plt.subplots(1, len(topics), figsize=(10, 3.6), sharex=True)
for ax, name, row in zip(axes, clf.classes_, clf.coef_):
    top = np.argsort(-row)[:8]
    ax.barh([vocabulary[j] for j in top][::-1], row[top][::-1], color="tab:blue")
    ax.set_title(f"{name}: {int((row != 0).sum())} non-zero")
fig.suptitle("Largest coefficients per topic (L1, C = 0.3)")
fig.tight_layout()
background_kept = int(np.any(clf.coef_[:, :n_background] != 0, axis=0).sum())
print(f"background words kept: {background_kept} of {n_background:,}")
