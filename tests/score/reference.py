"""Reference forms for the parity tests on arrays `zoobench score` saved:
bench/python/selectors_baseline.py's numpy/scipy/scikit-learn forms (the
benchmark's baseline; GBC, RSA and NCTI as their authors' code computes
them, the linear probe on zoobench's folds with scikit-learn's
LogisticRegression), plus the dense N x N LFC, kNN with its tie rule and
NCTI's normalisation over the zoo."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "python"))
from selectors_baseline import (dds, domain_similarity, gbc, hscore, leep_from, linear_probe, nce,  # noqa: E402,F401
                                ncti_terms, rsa)


def lfc(f, y):
    """The seed paper's formula on the full N x N matrices."""
    f = np.asarray(f, np.float64)
    theta = f @ f.T
    k = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    a, b = theta - theta.mean(), k - k.mean()
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def knn(f, y):
    """Leave-one-out 1-NN, ties broken by the smallest label."""
    f = np.asarray(f, np.float64)
    d = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean([y[d[i] == d[i].min()].min() == y[i] for i in range(len(y))]))


def ncti_zoo(terms):
    t = np.asarray(terms, np.float64)
    lo, hi = t.min(0), t.max(0)
    n = np.where(hi > lo, (t - lo) / np.where(hi > lo, hi - lo, 1), 0)
    return n[:, 0] + n[:, 1] - n[:, 2]
