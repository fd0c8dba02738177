"""Side-by-side baseline for bench_selectors: straightforward numpy / scipy /
scikit-learn forms of all 18 selectors (docs/selectors.md), run with Debian's
python3-numpy on the same OpenBLAS. Generates one cell, writes it to
OUT.h5 (with numpy's values under /expected, which bench_selectors checks its
own against) and the timings to OUT.json: seconds per selector, the best of
`--reps` after one warm-up.

    /usr/bin/python3 bench/python/selectors_baseline.py OUT [--n 5000] [--d 512] [--classes 20]
                     [--source-classes 10] [--reps 3] [--lfc-scaling]

--lfc-scaling also times LFC at N = 20,000, D = 512 in the naive N x N form
and the Gram-free form (needs ~7 GB and about a minute)."""
import argparse
import json
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.get("ZOOBENCH_THREADS", "2"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.stats  # noqa: E402
from sklearn.covariance import ledoit_wolf  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

# The 100-iteration cap is part of the linear probe's definition, on both sides.
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def onehot(y, c):
    return np.eye(c)[y]


def kernel_label_corr(x, y, c):  # LFC / LGC, Gram-free
    n = len(y)
    o = onehot(y, c)
    s = x.sum(0)
    sum_t = s @ s
    g = x.T @ x if x.shape[1] <= n else x @ x.T
    sum_t2 = (g ** 2).sum()
    counts = o.sum(0)
    sum_k = 2 * (counts ** 2).sum() - n * n
    sum_tk = 2 * ((x.T @ o) ** 2).sum() - sum_t
    n2 = n * n
    mt, mk = sum_t / n2, sum_k / n2
    return (sum_tk - n2 * mt * mk) / np.sqrt((sum_t2 - n2 * mt * mt) * (n2 - n2 * mk * mk))


def lfc_naive(x, y):
    theta = x @ x.T
    k = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    a, b = theta - theta.mean(), k - k.mean()
    return (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))


def leep_from(p, y, c):
    joint = onehot(y, c).T @ p / len(y)
    marg = joint.sum(0, keepdims=True)
    cond = np.divide(joint, marg, out=np.zeros_like(joint), where=marg > 0)
    return np.mean(np.log((p * cond[y]).sum(1)))


def nce(p, y, c):
    z = p.argmax(1)
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, (y, z), 1.0 / len(y))
    pz = joint.sum(0, keepdims=True)
    m = joint > 0
    return (joint[m] * np.log((joint / np.where(pz > 0, pz, 1))[m])).sum()


def logme(f, y, c):  # the popular numpy form, full-rank evidence (docs/selectors.md)
    n, d = f.shape
    sigma, v = np.linalg.eigh(f.T @ f)
    keep = sigma > 1e-10
    s, u = sigma[keep], f @ v[:, keep] / np.sqrt(sigma[keep])
    total = 0.0
    for k in range(c):
        yk = (y == k).astype(np.float64)
        x2 = (u.T @ yk) ** 2
        res_x2 = yk @ yk - x2.sum()
        alpha = beta = 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (s / (s + t)).sum()
            m2 = (s * x2 / (s + t) ** 2).sum()
            res2 = (x2 / (1 + s / t) ** 2).sum() + res_x2
            alpha, beta = gamma / m2, (n - gamma) / res2
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        t = alpha / beta
        m2 = (s * x2 / (s + t) ** 2).sum()
        res2 = (x2 / (1 + s / t) ** 2).sum() + res_x2
        logdet = np.log(alpha + beta * s).sum() + (d - len(s)) * np.log(alpha)
        total += (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * logdet - beta / 2 * res2 - alpha / 2 * m2
                  - n / 2 * np.log(2 * np.pi)) / n
    return total / c


def class_means_rows(f, y, c):
    o = onehot(y, c)
    return (o @ (o.T @ f / np.maximum(o.sum(0), 1)[:, None]))


def hscore(f, y, c):
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(class_means_rows(f, y, c), rowvar=False)
    return np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g)


def hscore_shrink(f, y, c):
    cov, alpha = ledoit_wolf(f)
    cov_g = np.cov(class_means_rows(f, y, c), rowvar=False)
    return np.trace(np.linalg.pinv(cov, rcond=1e-15) @ ((1 - alpha) * cov_g))


def nleep(f, y, c):
    x = PCA(n_components=0.8).fit_transform(f)
    gmm = GaussianMixture(5 * c, covariance_type="full", reg_covar=1e-6, max_iter=100, tol=1e-3, random_state=0).fit(x)
    return leep_from(gmm.predict_proba(x), y, c)


def gbc(f, y, c):
    p = PCA(n_components=min(64, *f.shape), svd_solver="full").fit_transform(f)
    mu = [p[y == k].mean(0) for k in range(c)]
    var = [np.maximum(p[y == k].var(0), 1e-4).mean() for k in range(c)]  # the authors' per-dimension floor
    total = 0.0
    for a in range(c):
        for b in range(c):
            if a != b:
                s = (var[a] + var[b]) / 2
                db = ((mu[a] - mu[b]) ** 2).sum() / (8 * s) + 0.5 * np.log(s / np.sqrt(var[a] * var[b]))
                total += np.exp(-db)
    return -total


def coding_rate(z, eps=1e-4):
    return 0.5 * np.linalg.slogdet(np.eye(z.shape[1]) + z.T @ z / (z.shape[0] * eps))[1]


def transrate(f, y, c):
    f = f - f.mean(0)
    return coding_rate(f) - sum(coding_rate(f[y == k]) for k in range(c)) / c


def sfda(f, y, c):
    def stats(x):
        pri = np.array([(y == k).mean() for k in range(c)])
        means = np.stack([x[y == k].mean(0) for k in range(c)])
        sw = sum(pri[k] * np.cov(x[y == k], rowvar=False, bias=True) for k in range(c))
        return pri, means, sw

    def predict(x, pri, means, sw, lam):
        d = x.shape[1]
        st = np.cov(x, rowvar=False, bias=True)
        st = (1 - lam) * st + lam * np.trace(st) / d * np.eye(d)
        sw2 = (1 - lam) * sw + lam * np.trace(sw) / d * np.eye(d)
        _, v = scipy.linalg.eigh(st - sw2, sw2)
        v = v[:, ::-1]
        coef = means @ v @ v.T
        z = x @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(pri)
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    pri, means, sw = stats(f)
    xv = sw.sum(1)
    for _ in range(3):
        yv = sw @ xv
        yv /= np.linalg.norm(yv)
        xv = sw @ yv
        xv /= np.linalg.norm(xv)
    lam = max(np.exp(-5 * (xv @ sw @ yv)), 1e-10)
    p = predict(f, pri, means, sw, lam)
    q = np.exp(p - p.max(1, keepdims=True))
    q = (q / q.sum(1, keepdims=True))[np.arange(len(y)), y][:, None]
    other = (means.sum(0, keepdims=True) - means) / (c - 1)
    mixed = q * f + (1 - q) * other[y]
    pri2, means2, sw2 = stats(mixed)
    return predict(mixed, pri2, means2, sw2, lam)[np.arange(len(y)), y].mean()


def upper(m):
    return m[np.triu_indices(m.shape[0], 1)]


def parc(f, y, c):
    p = PCA(n_components=32, svd_solver="full").fit_transform(f)
    p = (p - p.mean(0)) / p.std(0)
    label_rdm = np.where(y[:, None] == y[None, :], 0.0, c / (c - 1))
    return 100 * scipy.stats.spearmanr(upper(1 - np.corrcoef(p)), upper(label_rdm))[0]


def knn(f, y, c):
    sq = (f * f).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0)
    np.fill_diagonal(d, np.inf)
    return (y[d.argmin(1)] == y).mean()


MASK64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def probe_folds(f, y, seed=0, max_folds=5):
    """zoobench's stratified folds: within each class a seeded shuffle of the
    value-sorted (lexicographic) order; position p of the class-sorted list
    goes to fold p mod k, k = min(5, smallest class) >= 2."""
    canonical = np.lexsort(f.T[::-1])
    members = {}
    for rank, i in enumerate(canonical):
        members.setdefault(int(y[i]), []).append((splitmix64((seed << 32) + rank), int(i)))
    k = min(max_folds, max(2, min(len(m) for m in members.values())))
    fold, p = np.zeros(len(y), int), 0
    for cls in sorted(members):
        for _, i in sorted(members[cls]):
            fold[i], p = p % k, p + 1
    return fold, k


def linear_probe(f, y, c):
    """Mean held-out accuracy over stratified k folds of an L2 (1e-4 on the
    mean loss) multinomial logistic regression on standardised features."""
    fold, k = probe_folds(f, y)
    accs = []
    for held in range(k):
        train = fold != held
        sc = StandardScaler().fit(f[train])
        clf = LogisticRegression(C=1 / (train.sum() * 1e-4), max_iter=100).fit(sc.transform(f[train]), y[train])
        accs.append((clf.predict(sc.transform(f[~train])) == y[~train]).mean())
    return float(np.mean(accs))


def rsa(f, probe):
    """The authors centre every feature over the samples before the RDM."""
    f, probe = f - f.mean(0), probe - probe.mean(0)
    return scipy.stats.spearmanr(upper(1 - np.corrcoef(f)), upper(1 - np.corrcoef(probe)))[0]


def cosine_rdm(f):
    sd = f.std(0)
    z = (f - f.mean(0)) / np.where(sd > 0, sd, 1)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
    return 1 - z @ z.T


def hsic_u(k, l):
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    n = k.shape[0]
    k1, l1 = k.sum(1), l.sum(1)
    return ((k * l).sum() + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * k1 @ l1) / (n * (n - 3))


def dds(f, probe):
    a, b = cosine_rdm(f), cosine_rdm(probe)
    return hsic_u(a, b) / np.sqrt(hsic_u(a, a) * hsic_u(b, b))


def domain_similarity(f, y, c, src_means, src_counts):
    keep = src_counts >= 5
    s, ws = src_means[keep], src_counts[keep] / src_counts[keep].sum()
    present = np.unique(y)
    t = np.stack([f[y == k].mean(0) for k in present])
    wt = np.bincount(y, minlength=c)[present] / len(y)
    cost = np.sqrt(((s[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    ns, nt = len(ws), len(wt)
    a_eq = np.zeros((ns + nt, ns * nt))
    for i in range(ns):
        a_eq[i, i * nt:(i + 1) * nt] = 1
    for j in range(nt):
        a_eq[ns + j, j::nt] = 1
    res = scipy.optimize.linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([ws, wt]), bounds=(0, None), method="highs")
    return np.exp(-0.01 * res.fun)


def ncti_terms(f, y):
    """NCTI's three raw terms as the authors compute them (the score min-max
    normalises each over the zoo): PCA to 64; LDA shrinkage
    s = max(exp(-sum of the 32 largest explained variances), 1e-10), and at
    the floor the SVD solver without shrinkage. Components without variance
    (N <= 64) are dropped, as zoobench does: they are rounding noise."""
    pca = PCA(n_components=min(64, *f.shape), svd_solver="full")
    x = pca.fit_transform(f)
    x = x[:, pca.explained_variance_ > 1e-12 * pca.explained_variance_[0]]
    s = max(np.exp(-np.sort(pca.explained_variance_)[::-1][:32].sum()), 1e-10)
    if s <= 1e-10:
        lda = LinearDiscriminantAnalysis(solver="svd")
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=s)
    low = lda.fit_transform(x, y)
    low = low - low.mean(0, keepdims=True)
    prob = lda.predict_proba(x)
    own = np.searchsorted(lda.classes_, y)
    return [np.linalg.norm(low, ord="nuc"), prob[np.arange(len(y)), own].mean(),
            np.log(sum(np.linalg.norm(prob[own == k], ord="nuc") for k in range(len(lda.classes_))))]


def ncti_raw(f, y, c):  # one model alone: the unnormalised combination
    t = ncti_terms(f, y)
    return t[0] + t[1] - t[2]


def make_cell(n, d, c, cs, seed=0):
    """Features with low-rank class structure, as real penultimate features have."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    w = rng.standard_normal((32, d))
    latent = rng.standard_normal((c, 32))[y] * 0.35 + rng.standard_normal((n, 32))
    f = latent @ w + 0.3 * rng.standard_normal((n, d))
    f = f.astype(np.float32).astype(np.float64)  # zoobench scores float32 features
    logits = rng.standard_normal((c, cs))[y] * 2 + rng.standard_normal((n, cs))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (rng.standard_normal((n, 4096)) + rng.standard_normal((c, 4096))[y]).astype(np.float32).astype(np.float64)
    probe = (latent @ rng.standard_normal((32, 256)) + rng.standard_normal((n, 256))).astype(np.float32).astype(np.float64)
    src_means = rng.standard_normal((cs, 32)) @ w
    src_counts = np.full(cs, 500.0)
    return dict(features=f, labels=y.astype(np.int64), source_probs=p, grad_sketch=g, probe_features=probe,
                source_class_means=src_means, source_class_counts=src_counts)


def selectors(cell, c):
    f, y, p, g = cell["features"], cell["labels"], cell["source_probs"], cell["grad_sketch"]
    probe, sm, sc = cell["probe_features"], cell["source_class_means"], cell["source_class_counts"]
    return {
        "lfc": lambda: kernel_label_corr(f, y, c),
        "lgc": lambda: kernel_label_corr(g, y, c),
        "leep": lambda: leep_from(p, y, c),
        "nce": lambda: nce(p, y, c),
        "logme": lambda: logme(f, y, c),
        "hscore": lambda: hscore(f, y, c),
        "hscore_shrink": lambda: hscore_shrink(f, y, c),
        "nleep": lambda: nleep(f, y, c),
        "gbc": lambda: gbc(f, y, c),
        "transrate": lambda: transrate(f, y, c),
        "sfda": lambda: sfda(f, y, c),
        "parc": lambda: parc(f, y, c),
        "knn": lambda: knn(f, y, c),
        "linear_probe": lambda: linear_probe(f, y, c),
        "rsa": lambda: rsa(f, probe),
        "dds": lambda: dds(f, probe),
        "domain_similarity": lambda: domain_similarity(f, y, c, sm, sc),
        "ncti": lambda: ncti_raw(f, y, c),
    }


def timed(fn, reps):
    value = fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return float(value), best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--source-classes", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lfc-scaling", action="store_true")
    a = ap.parse_args()
    cell = make_cell(a.n, a.d, a.classes, a.source_classes)
    results = {"n": a.n, "d": a.d, "classes": a.classes, "numpy": np.__version__, "selectors": {}}
    with h5py.File(a.out + ".h5", "w") as h:
        for k, v in cell.items():
            h[k] = v
        h.attrs["classes"] = a.classes
        for name, fn in selectors(cell, a.classes).items():
            value, secs = timed(fn, 1 if name in ("knn", "nleep") else a.reps)
            results["selectors"][name] = {"value": value, "seconds": secs}
            h[f"expected/{name}"] = np.array([value])
            print(f"{name:18s} {secs:9.4f} s   value {value:.6g}", flush=True)
    if a.lfc_scaling:
        big = make_cell(20000, 512, a.classes, a.source_classes, seed=1)
        f, y = big["features"], big["labels"]
        v1, t_free = timed(lambda: kernel_label_corr(f, y, a.classes), a.reps)
        t0 = time.perf_counter()
        v2 = lfc_naive(f, y)
        t_naive = time.perf_counter() - t0
        assert abs(v1 - v2) < 1e-8, (v1, v2)
        results["lfc_scaling"] = {"n": 20000, "d": 512, "naive_seconds": t_naive, "gram_free_seconds": t_free,
                                  "value": v1}
        print(f"LFC N=20000 D=512: naive N x N {t_naive:.2f} s, Gram-free {t_free:.4f} s, value {v1:.6f}")
    with open(a.out + ".json", "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
