"""Straightforward numpy/scipy/scikit-learn forms of the selectors, as
SELECTORS.md defines them, for parity tests on arrays zoobench saved."""
import numpy as np
import scipy.optimize
import scipy.stats


def lfc(f, y):
    f = np.asarray(f, np.float64)
    theta = f @ f.T
    k = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    a, b = theta - theta.mean(), k - k.mean()
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def leep(p, y, c):
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, y, p)
    joint /= len(y)
    marg = joint.sum(0, keepdims=True)
    cond = np.divide(joint, marg, out=np.zeros_like(joint), where=marg > 0)
    return float(np.mean(np.log((p * cond[y]).sum(1))))


def nce(p, y, c):
    z = p.argmax(1)
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    pz = joint.sum(0)
    s = 0.0
    for cc in range(c):
        for zz in range(p.shape[1]):
            if joint[cc, zz] > 0:
                s += joint[cc, zz] * np.log(joint[cc, zz] / pz[zz])
    return s


def hscore(f, y):
    f = np.asarray(f, np.float64)
    cov_f = np.cov(f, rowvar=False)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    cov_g = np.cov(g, rowvar=False)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def knn(f, y):
    f = np.asarray(f, np.float64)
    d = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    hits = 0
    for i in range(len(y)):
        best = d[i].min()
        hits += int(y[d[i] == best].min() == y[i])
    return hits / len(y)


def _upper(m):
    return m[np.triu_indices(m.shape[0], 1)]


def rsa(f, probe):
    return float(scipy.stats.spearmanr(_upper(1 - np.corrcoef(f)), _upper(1 - np.corrcoef(probe)))[0])


def _cosine_rdm(f):
    f = np.asarray(f, np.float64)
    sd = f.std(0)
    z = (f - f.mean(0)) / np.where(sd > 0, sd, 1)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
    return 1 - z @ z.T


def _hsic_u(k, l):
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    n = k.shape[0]
    one = np.ones(n)
    return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def dds(f, probe):
    a, b = _cosine_rdm(f), _cosine_rdm(probe)
    return float(_hsic_u(a, b) / np.sqrt(_hsic_u(a, a) * _hsic_u(b, b)))


def domain_similarity(f, y, src_means, src_counts):
    keep = src_counts >= 5
    s, ws = src_means[keep], src_counts[keep] / src_counts[keep].sum()
    classes = np.unique(y)
    t = np.stack([np.asarray(f, np.float64)[y == c].mean(0) for c in classes])
    wt = np.array([(y == c).sum() for c in classes], np.float64)
    wt /= wt.sum()
    cost = np.linalg.norm(s[:, None, :] - t[None, :, :], axis=-1)
    ns, nt = len(ws), len(wt)
    a_eq = np.zeros((ns + nt, ns * nt))
    for i in range(ns):
        a_eq[i, i * nt:(i + 1) * nt] = 1
    for j in range(nt):
        a_eq[ns + j, j::nt] = 1
    res = scipy.optimize.linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([ws, wt]), bounds=(0, None),
                                 method="highs")
    return float(np.exp(-0.01 * res.fun))


def ncti_terms(f, y):
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    f = np.asarray(f, np.float64)
    x = PCA(n_components=min(64, *f.shape)).fit_transform(f)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, y)
    low = lda.transform(x)
    low = low - low.mean(0, keepdims=True)
    nuc = np.linalg.norm(low, ord="nuc")
    prob = lda.predict_proba(x)
    seli = prob[np.arange(len(y)), y].mean()
    vc = np.log(sum(np.linalg.norm(prob[y == c], ord="nuc") for c in np.unique(y)))
    return [nuc, seli, vc]


def ncti_zoo(terms):
    t = np.asarray(terms, np.float64)
    lo, hi = t.min(0), t.max(0)
    n = np.where(hi > lo, (t - lo) / np.where(hi > lo, hi - lo, 1), 0)
    return n[:, 0] + n[:, 1] - n[:, 2]
