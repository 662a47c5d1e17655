"""Time to tau over trials, with censored trials kept censored.

A trial that did not reach tau at the finest resolution is right-censored at what it spent (its
follow-up): its time to tau is longer than that, unknown by how much. The estimate per method is the
Kaplan-Meier survival curve S(t) = P(time to tau > t); its median is the first time S drops to 0.5 or
below, and when it never does the median is only known to exceed the longest follow-up ("not
reached: > X"). Its 95 % confidence interval is the percentile interval of the medians of trials
resampled with replacement (each resample keeps every trial's censoring); a resample whose median is
censored counts as +infinity, so an upper end that lands on one is unbounded. Nothing here averages
a censored trial as if it had finished.

The ratio PRPD / fixed-fine of the medians is exact when both medians are; when fixed-fine's median
is censored at X the ratio is an upper bound (PRPD's median / X), when PRPD's is, a lower bound. The
bootstrap of the ratio carries the same bounds, so its interval stays conservative: an upper-bound
sample can only move the lower end down (to 0, unbounded) and a lower-bound sample the upper end up.
"""

from __future__ import annotations

import math
import textwrap
from typing import Iterable

import numpy as np

METRICS = {"wall_s": ("time_to_tau_wall_s", "followup_wall_s"),
           "sampling_s": ("time_to_tau_sampling_s", "followup_sampling_s"),
           "samples": ("samples_to_tau", "followup_samples")}
BOOTSTRAP = 2000


def kaplan_meier(times: Iterable[float], events: Iterable[bool]) -> list[tuple[float, float]]:
    """Steps (t, S(t)) of the Kaplan-Meier estimate, starting at (0, 1); one step per event time.
    Trials censored at an event time are still at risk at it (the usual convention)."""
    t = np.asarray(list(times), dtype=float)
    e = np.asarray(list(events), dtype=bool)
    steps, s = [(0.0, 1.0)], 1.0
    for u in np.unique(t[e]):
        at_risk = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        s *= 1.0 - d / at_risk
        steps.append((float(u), s))
    return steps


def km_median(times, events) -> tuple[float, bool]:
    """(median, exact): the first event time with S <= 0.5, exact=True; or (longest follow-up, False)
    when S stays above 0.5, meaning the median is greater than that (or (nan, False) without trials)."""
    t = list(times)
    if not t:
        return math.nan, False
    for u, s in kaplan_meier(t, events)[1:]:
        if s <= 0.5 + 1e-12:
            return u, True
    return float(max(t)), False


def _order_ci(values: np.ndarray) -> tuple[float, float]:
    """2.5 / 97.5 % order statistics (no interpolation, so +inf samples stay +inf)."""
    v = np.sort(values)
    n = len(v)
    return float(v[max(0, math.floor(0.025 * n))]), float(v[min(n - 1, math.ceil(0.975 * n) - 1)])


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _bootstrap_medians(t: np.ndarray, e: np.ndarray, rng, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of b resamples (value, exact); a censored median's value is its bound."""
    vals, exact = np.empty(b), np.empty(b, dtype=bool)
    n = len(t)
    for i in range(b):
        idx = rng.integers(0, n, n)
        vals[i], exact[i] = km_median(t[idx], e[idx])
    return vals, exact


def estimate(times, events, *, rng=None, bootstrap: int = BOOTSTRAP, unit: str = "") -> dict:
    """Kaplan-Meier median of one method's time to tau and its bootstrap 95 % CI."""
    t = np.asarray(list(times), dtype=float)
    e = np.asarray(list(events), dtype=bool)
    rng = rng if rng is not None else np.random.default_rng(0)
    med, exact = km_median(t, e)
    out = {"n": int(len(t)), "reached": int(e.sum()), "censored": int((~e).sum()),
           "median": med if len(t) else None, "median_exact": bool(exact),
           "km": [[u, s] for u, s in kaplan_meier(t, e)] if len(t) else []}
    u = f" {unit}" if unit else ""
    if not len(t):
        out.update(median_text="no trials", ci95=None, ci_text="")
        return out
    out["median_text"] = f"{_fmt(med)}{u}" if exact else f"not reached: > {_fmt(med)}{u} (S stays above 0.5)"
    vals, ex = _bootstrap_medians(t, e, rng, bootstrap)
    lo, hi = _order_ci(np.where(ex, vals, np.inf))
    out["ci95"] = {"low": None if math.isinf(lo) else lo, "high": None if math.isinf(hi) else hi,
                   "bootstrap": bootstrap, "censored_resamples": int((~ex).sum())}
    if math.isinf(lo):  # even the low end is a censored median: all that is known is that it exceeds its bound
        out["ci95"]["low_exceeds"] = float(vals[~ex].min())
    lo_t = f"> {_fmt(out['ci95']['low_exceeds'])}" if math.isinf(lo) else _fmt(lo)
    hi_t = "unbounded (resampled medians censored)" if math.isinf(hi) else _fmt(hi)
    out["ci_text"] = f"95 % CI [{lo_t}, {hi_t}]{u}"
    out["_boot"] = (vals, ex)  # for the ratio; dropped before writing
    return out


def ratio(num: dict, den: dict, name_num: str = "prpd", name_den: str = "fixed_fine") -> dict:
    """Ratio of two ``estimate`` medians with a bootstrap CI carrying the censoring bounds."""
    if not num.get("n") or not den.get("n"):
        return {"value": None, "kind": "undefined", "text": "a method has no trials"}
    kind_of = {(True, True): "exact", (True, False): "upper_bound", (False, True): "lower_bound", (False, False): "undefined"}
    kind = kind_of[(num["median_exact"], den["median_exact"])]
    value = num["median"] / den["median"] if den["median"] else None
    nv, ne = num["_boot"]
    dv, de = den["_boot"]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = nv / dv
    lo, hi = _order_ci(np.where(np.isfinite(r), r, np.inf))
    upper_only = ne & ~de  # the true ratio is at most the sample
    lower_only = ~ne & de  # at least the sample
    if upper_only.any() or (~ne & ~de).any():
        lo = 0.0
    if lower_only.any() or (~ne & ~de).any():
        hi = math.inf
    ci = {"low": lo, "high": None if math.isinf(hi) else hi,
          "resamples": {"exact": int((ne & de).sum()), "upper_bound": int(upper_only.sum()),
                        "lower_bound": int(lower_only.sum()), "undefined": int((~ne & ~de).sum())}}
    ci_t = f"95 % CI [{_fmt(lo)}, {'unbounded' if math.isinf(hi) else _fmt(hi)}]"
    if kind == "exact":
        text = f"{name_num} / {name_den} = {_fmt(value)}, {ci_t}"
    elif kind == "upper_bound":
        text = (f"{name_num} / {name_den} < {_fmt(value)} ({name_den}'s median is censored: > {_fmt(den['median'])}), "
                f"{ci_t} (conservative)")
    elif kind == "lower_bound":
        text = (f"{name_num} / {name_den} > {_fmt(value)} ({name_num}'s median is censored: > {_fmt(num['median'])}), "
                f"{ci_t} (conservative)")
    else:
        text = f"{name_num} / {name_den}: undefined (both medians censored)"
        value = None
    return {"value": value, "kind": kind, "ci95": ci, "text": text}


def settings_key(settings: dict) -> str:
    return ", ".join(f"{k}={settings[k]}" for k in sorted(settings))


def aggregate(rows: list[dict], *, bootstrap: int = BOOTSTRAP, seed: int = 0) -> list[dict]:
    """Per settings combination, per method: KM medians of time to tau (wall, sampling, samples) with
    bootstrap CIs, finished / censored counts, and the PRPD / fixed-fine ratios."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(settings_key(r["settings"]), []).append(r)
    out = []
    for key, grp in groups.items():
        methods: dict[str, dict] = {}
        for m in dict.fromkeys(r["method"] for r in grp):
            trials = [r for r in grp if r["method"] == m]
            entry = {"trials": len(trials), "finished": sum(r["reached_tau"] for r in trials),
                     "censored": sum(r["censored"] for r in trials),
                     "incomplete": sum(not r.get("complete", True) for r in trials),
                     "seeds": sorted(r["seed"] for r in trials), "time_to_tau": {}}
            checked = [r["confirmation"] for r in trials if r.get("confirmation")]
            entry["confirmation"] = {"evaluated": len(checked), "reached_tau": sum(c["reaches_tau"] for c in checked),
                                     "success_rates": [c["success_rate"] for c in checked]}
            for metric, (hit_key, follow_key) in METRICS.items():
                usable = [r for r in trials if r.get(follow_key) is not None]
                if not usable:
                    continue
                times = [r[hit_key] if r["reached_tau"] else r[follow_key] for r in usable]
                unit = {"wall_s": "s", "sampling_s": "s", "samples": "samples"}[metric]
                entry["time_to_tau"][metric] = estimate(times, [r["reached_tau"] for r in usable], unit=unit,
                                                        rng=np.random.default_rng(seed), bootstrap=bootstrap)
            methods[m] = entry
        group = {"settings": grp[0]["settings"], "settings_key": key, "methods": methods}
        if "prpd" in methods and "fixed_fine" in methods:
            group["ratio_prpd_over_fixed_fine"] = {
                metric: ratio(methods["prpd"]["time_to_tau"][metric], methods["fixed_fine"]["time_to_tau"][metric])
                for metric in METRICS
                if metric in methods["prpd"]["time_to_tau"] and metric in methods["fixed_fine"]["time_to_tau"]}
        out.append(group)
    return out


def strip_private(obj):
    """The summary as JSON: no bootstrap arrays, no NaN/inf."""
    if isinstance(obj, dict):
        return {k: strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [strip_private(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def summary_lines(summary: list[dict]) -> list[str]:
    """Plain-text statements, generated from the numbers."""
    lines = []
    for g in summary:
        lines.append(f"[{g['settings_key']}]")
        for m, e in g["methods"].items():
            w = e["time_to_tau"].get("wall_s")
            c = e.get("confirmation") or {}
            lines.append(f"  {m}: {e['finished']} of {e['trials']} reached tau, {e['censored']} censored"
                         + (f"; median wall time to tau {w['median_text']}, {w['ci_text']}" if w else "")
                         + (f"; confirmed on unseen worlds: {c['reached_tau']} of {c['evaluated']}" if c.get("evaluated") else ""))
        for metric, r in g.get("ratio_prpd_over_fixed_fine", {}).items():
            lines.append(f"  {metric}: {r['text']}")
    return lines


def _km_at(steps: list, grid: np.ndarray) -> np.ndarray:
    ts = np.array([s[0] for s in steps])
    ss = np.array([s[1] for s in steps])
    return ss[np.searchsorted(ts, grid, side="right") - 1]


def plot(summary: list[dict], rows: list[dict], path, *, bootstrap: int = 500, seed: int = 0) -> None:
    """Fraction of trials that reached tau (1 - KM) over wall and sampling time, per method, with
    pointwise bootstrap 95 % bands; censored trials end their curve's support with a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summary[:4]
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.6 * len(groups)), squeeze=False)
    for gi, g in enumerate(groups):
        grp = [r for r in rows if settings_key(r["settings"]) == g["settings_key"]]
        for ci, metric in enumerate(("wall_s", "sampling_s")):
            ax = axes[gi][ci]
            hit_key, follow_key = METRICS[metric]
            for m in g["methods"]:
                trials = [r for r in grp if r["method"] == m and r.get(follow_key) is not None]
                if not trials:
                    continue
                t = np.array([r[hit_key] if r["reached_tau"] else r[follow_key] for r in trials], dtype=float)
                e = np.array([r["reached_tau"] for r in trials], dtype=bool)
                grid = np.linspace(0, max(t.max(), 1e-9) * 1.05, 200)
                line, = ax.step(grid, 1 - _km_at(kaplan_meier(t, e), grid), where="post", label=f"{m} ({e.sum()}/{len(t)} reached)")
                rng = np.random.default_rng(seed)
                curves = np.array([1 - _km_at(kaplan_meier(t[idx], e[idx]), grid)
                                   for idx in (rng.integers(0, len(t), len(t)) for _ in range(bootstrap))])
                ax.fill_between(grid, np.percentile(curves, 2.5, axis=0), np.percentile(curves, 97.5, axis=0),
                                step="post", alpha=0.2, color=line.get_color())
                cens = t[~e]
                if len(cens):
                    ax.plot(cens, 1 - _km_at(kaplan_meier(t, e), cens), "|", markersize=12, color=line.get_color())
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlabel({"wall_s": "wall time (s)", "sampling_s": "sampling time, inside env.step (s)"}[metric])
            ax.set_ylabel("fraction of trials at tau (1 - KM)")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.set_title("\n".join(textwrap.wrap(g["settings_key"], 60)), fontsize=7)
            ax.legend(fontsize=7)
    fig.suptitle("time to tau at the finest resolution (Kaplan-Meier, bands: bootstrap 95 %, |: censored)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
