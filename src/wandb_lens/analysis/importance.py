"""Parameter importance for a set of runs, as W&B's parameter-importance panel defines it:
- correlation: the linear (Pearson) correlation of a parameter with the metric (W&B's column);
- rank_corr: Spearman's rank correlation (monotone, robust to scale, e.g. a log-uniform lr);
- importance: a random forest fit with the parameters as inputs and the metric as target; its
  impurity (variance) reduction per parameter, normalised to sum to 1.
numpy only. Categorical parameters enter the forest as integer codes ordered by their mean metric
(a tree can then split them like numbers); their correlations use those codes too.
"""

from __future__ import annotations

import numpy as np

TREES = 50
MAX_DEPTH = 6
MIN_LEAF = 3
BINS = 32
FEW_RUNS = 20  # below this, importances are noisy: say so


def encode(values: list, target: np.ndarray) -> tuple[np.ndarray, bool]:
    """A parameter's values as floats (missing -> NaN); (codes, is_categorical)."""
    nums = []
    numeric = True
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            nums.append(float(v))
        elif isinstance(v, (int, float, np.integer, np.floating)):
            nums.append(float(v))
        elif v is None:
            nums.append(np.nan)
        else:
            numeric = False
            break
    if numeric:
        return np.asarray(nums, dtype=np.float64), False
    labels = ["" if v is None else str(v) for v in values]
    uniq = sorted(set(labels))
    means = {u: float(np.nanmean([t for l, t in zip(labels, target) if l == u])) for u in uniq}
    order = {u: i for i, u in enumerate(sorted(uniq, key=lambda u: (means[u], u)))}
    return np.asarray([order[l] for l in labels], dtype=np.float64), True


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    ok = np.isfinite(x) & np.isfinite(y)
    return _pearson(x[ok], y[ok]), _pearson(_rank(x[ok]), _rank(y[ok]))


def _bins(X: np.ndarray, max_bins: int = BINS) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each feature as bin codes 0..k-1 over its distinct values (quantile edges when more than
    max_bins), and the edges (split thresholds sit between bins)."""
    codes = np.zeros(X.shape, dtype=np.int64)
    edges = []
    for f in range(X.shape[1]):
        u = np.unique(X[:, f])
        if len(u) > max_bins:
            u = np.unique(np.quantile(X[:, f], np.linspace(0, 1, max_bins + 1)[1:-1]))
            codes[:, f] = np.searchsorted(u, X[:, f], side="left")
            edges.append(u)
        else:
            codes[:, f] = np.searchsorted(u, X[:, f])
            edges.append((u[:-1] + u[1:]) / 2.0)
    return codes, edges


def forest_importance(X: np.ndarray, y: np.ndarray, trees: int = TREES, seed: int = 0) -> np.ndarray:
    """Mean impurity (variance) decrease per feature over a bagged forest, normalised to sum 1.
    Trees grow level by level (all nodes of a depth in one bincount); splits are searched over at
    most BINS quantile bins per feature, on a random ~70% of the features per node (the subset
    spreads credit between correlated parameters, as a random forest does)."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    X = np.where(np.isfinite(X), X, np.nanmin(np.where(np.isfinite(X), X, np.inf), axis=0) - 1)
    codes, _ = _bins(X)
    nb = int(codes.max()) + 1 if codes.size else 1
    flat = codes + np.arange(d) * nb
    imp = np.zeros(d)
    m = max(1, int(round(d * 0.7)))
    for _ in range(trees):
        rows = rng.integers(0, n, n)
        node = np.zeros(n, dtype=np.int64)
        k = 1
        for _depth in range(MAX_DEPTH):
            live = node >= 0
            if not live.any():
                break
            r, nd = rows[live], node[live]
            yy = y[r]
            keys = (nd[:, None] * (d * nb) + flat[r]).ravel()
            w = np.repeat(yy, d)
            size = k * d * nb
            cnt = np.bincount(keys, minlength=size).reshape(k, d, nb)
            s1 = np.bincount(keys, weights=w, minlength=size).reshape(k, d, nb)
            s2 = np.bincount(keys, weights=w * w, minlength=size).reshape(k, d, nb)
            tn, t1, t2 = cnt[:, 0].sum(1), s1[:, 0].sum(1), s2[:, 0].sum(1)  # per node totals
            nl, c1, c2 = np.cumsum(cnt, 2)[..., :-1], np.cumsum(s1, 2)[..., :-1], np.cumsum(s2, 2)[..., :-1]
            nr = tn[:, None, None] - nl
            with np.errstate(divide="ignore", invalid="ignore"):
                sse = (c2 - c1 ** 2 / nl) + ((t2[:, None, None] - c2) - (t1[:, None, None] - c1) ** 2 / nr)
                total = t2 - t1 ** 2 / np.maximum(tn, 1)
            allowed = np.argsort(rng.random((k, d)), axis=1) < m
            ok = (nl >= MIN_LEAF) & (nr >= MIN_LEAF) & allowed[:, :, None]
            sse = np.where(ok, sse, np.inf).reshape(k, -1)
            best = np.argmin(sse, axis=1)
            gain = total - sse[np.arange(k), best]
            split = np.isfinite(gain) & (gain > 1e-12 * np.maximum(1.0, np.abs(total)))
            if not split.any():
                break
            bf, bb = best // nb, best % nb
            np.add.at(imp, bf[split], gain[split])
            new_id = np.full(k, -1, dtype=np.int64)
            new_id[split] = np.arange(int(split.sum()))
            nid = new_id[node[live]]
            go_right = codes[r, bf[node[live]]] > bb[node[live]]
            node_live = np.where(nid >= 0, 2 * nid + go_right, -1)
            node[live] = node_live
            k = 2 * int(split.sum())
    s = imp.sum()
    return imp / s if s > 0 else imp


def importance_table(params: dict[str, list], metric: np.ndarray) -> list[dict]:
    """One row per parameter: importance, correlation, rank_corr, categorical; most important first."""
    names = list(params)
    cols, cats = [], []
    for p in names:
        c, is_cat = encode(params[p], metric)
        cols.append(c)
        cats.append(is_cat)
    if not names:
        return []
    X = np.column_stack(cols)
    imp = forest_importance(X, metric)
    rows = []
    for i, p in enumerate(names):
        corr, rank = correlations(X[:, i], metric)
        rows.append({"param": p, "importance": float(imp[i]), "correlation": corr, "rank_corr": rank,
                     "categorical": cats[i]})
    rows.sort(key=lambda r: -r["importance"])
    return rows
