#!/usr/bin/env python3
"""The README's comparison table from `lookalike bench --json` runs: one row per world, MetaHeac against
LR and MLP+pre-training on the cold group (and the hot group's AUCs), paired per campaign.

usage: bench-table.py [--one-stage] NAME=RUN.json[,RUN.json…][+RUN.json[,RUN.json…]…] [NAME=…]

--one-stage adds a last column: MetaHeac against MLP one-stage on the cold group, as the other "vs" cells.

Under the table, "across worlds": each world is one unit (the question a new data set asks is whether
MetaHeac will be ahead on it). Per baseline, group and metric: the worlds where MetaHeac's mean is ahead
and behind, the median of its per-world lead, the two-sided sign test and the exact two-sided Wilcoxon
signed-rank test over the worlds' leads (a world with no lead at all counts for neither), then how many
worlds' own paired tests call MetaHeac ahead and behind at p < 0.05, as they stand and after Holm's
correction for testing that many worlds (with twenty worlds and no difference anywhere, chance alone
gives about one call at p < 0.05 a row, either way); the worlds behind at p < 0.05 are named under the
table with their corrected p.

A world's runs are merged by method: one run may hold MetaHeac and LR, another MLP+pre-training, when
they ran at different times. They must be of the same prepared file and the same seeds: every method is
deterministic per seed, so a method of an earlier run repeats in a later one (`bench` on the same build).
Where two runs hold the same method, the first one's is used.

Folds of one world (`prepare --folds N --fold K`, one bench per fold, joined by "+") are pooled: their test
campaigns must be disjoint, and each method present in every fold gets the union of their campaigns, its
per-seed means weighted by the campaigns each fold scored (so a seed's figure is its mean over all of the
world's test campaigns) and the std over seeds of those. The folds must have run the same seeds.

Cells: mean campaign AUC (± std over seeds for MetaHeac) and P@5%; "vs" columns: MetaHeac − method
of the per-campaign means over seeds, campaigns MetaHeac wins (ties), two-sided paired t-test p, then the
same for P@5%.
"""

import importlib.util
import json
import math
import os
import statistics
import sys

spec = importlib.util.spec_from_file_location(
    "compare_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare-bench.py")
)
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def merged(paths):
    """The methods of runs of one prepared file, and their seeds."""
    methods, data, seeds = {}, None, None
    for p in paths:
        run = json.load(open(p))
        if data is None:
            data, seeds = run["data"], run["seeds"]
        elif (run["data"], run["seeds"]) != (data, seeds):
            raise SystemExit(f"{p}: another prepared file or other seeds than {paths[0]}")
        for name, result in run["methods"].items():
            methods.setdefault(name, result)
    return methods, seeds


def pooled_metric(parts, k, key):
    """One metric over the folds' campaigns: per seed, the folds' means weighted by the campaigns each
    scored (column k of per_campaign holds the campaign's mean over seeds, None where undefined)."""
    per_seed, weight = None, 0
    for group in parts:
        n = sum(c[k] is not None for c in group["per_campaign"])
        if n == 0:
            continue
        values = group[key]["per_seed"]
        per_seed = [0.0] * len(values) if per_seed is None else per_seed
        if len(values) != len(per_seed) or any(v is None for v in values):
            raise SystemExit(f"{key}: the folds' per-seed figures do not line up")
        per_seed = [a + n * v for a, v in zip(per_seed, values)]
        weight += n
    if per_seed is None:
        return {"mean": None, "std": None, "per_seed": []}
    per_seed = [v / weight for v in per_seed]
    std = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
    return {"mean": statistics.fmean(per_seed), "std": std, "per_seed": per_seed}


def pooled(folds):
    """Folds of one world as one run: see the module's doc."""
    if len(folds) == 1:
        return folds[0][0]
    if any(seeds != folds[0][1] for _, seeds in folds):
        raise SystemExit("the folds ran other seeds")
    names = [n for n in folds[0][0] if all(n in methods for methods, _ in folds)]
    out = {}
    for name in names:
        out[name] = {}
        for group in ("cold", "hot"):
            parts = [methods[name][group] for methods, _ in folds]
            seen = set()
            for part in parts:
                aids = {c[0] for c in part["per_campaign"]}
                if aids & seen:
                    raise SystemExit(f"{name}: campaign {sorted(aids & seen)[0]} is in two folds")
                seen |= aids
            out[name][group] = {
                "campaigns": sum(p["campaigns"] for p in parts),
                "per_campaign": [c for p in parts for c in p["per_campaign"]],
                "mean_auc": pooled_metric(parts, 2, "mean_auc"),
                "precision": pooled_metric(parts, 3, "precision"),
            }
    return out


def versus(methods, other, group, k):
    """MetaHeac − other over the campaigns both score: (mean, wins, ties, n, p)."""
    per = [{c[0]: c for c in methods[n][group]["per_campaign"]} for n in ("MetaHeac", other)]
    aids = [a for a in per[0] if a in per[1] and per[0][a][k] is not None and per[1][a][k] is not None]
    return compare.paired([per[0][a][k] for a in aids], [per[1][a][k] for a in aids])


def fmt_p(p):
    return "p < 0.001" if p < 0.001 else f"p {p:.3f}"


def cell_vs(methods, other, group):
    if other not in methods or not methods["MetaHeac"][group]["campaigns"]:
        return "–"
    m, wins, ties, n, p = versus(methods, other, group, 2)
    pm, _, _, _, pp = versus(methods, other, group, 3)
    tied = f" ({ties} tied)" if ties else ""
    return f"{m:+.4f}, {wins} of {n}{tied}, {fmt_p(p)}; P@5% {pm:+.3f}, {fmt_p(pp)}"


def sign_test(ahead, behind):
    """Two-sided exact binomial test of ahead against behind at one half."""
    n = ahead + behind
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(ahead, behind) + 1)) / 2**n
    return min(1.0, 2 * tail)


def signed_rank(d):
    """Exact two-sided Wilcoxon signed-rank p of the differences d (zeros dropped, tied |d| share ranks)."""
    d = [x for x in d if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    rank2 = [0] * n  # twice the average rank, so that shared ranks stay integers
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            rank2[order[k]] = i + j + 2
        i = j + 1
    # The null distribution of the positive ranks' sum: every sign equally likely.
    total = sum(rank2)
    ways = [0] * (total + 1)
    ways[0] = 1
    for r in rank2:
        for t in range(total, r - 1, -1):
            ways[t] += ways[t - r]
    w = sum(r for r, x in zip(rank2, d) if x > 0)
    low = min(w, total - w)
    tail = sum(ways[: low + 1]) / 2**n
    return min(1.0, 2 * tail)


def holm(ps):
    """Holm's step-down adjusted p-values of ps (same order): each controls the chance of any false call
    among all of them at its level."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [1.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def across(worlds, others, names):
    """Markdown lines: MetaHeac against each baseline over the worlds, one world one unit; then the worlds
    where a baseline is ahead at p < 0.05 on the world's own paired test."""
    lines = [
        "| MetaHeac against | group, metric | worlds ahead | behind | median lead | sign test | signed-rank test "
        "| worlds ahead / behind at p < 0.05 | after Holm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for other in others:
        for group in ("cold", "hot"):
            for k, metric in ((2, "AUC"), (3, "P@5%")):
                tests = [
                    (name, versus(methods, other, group, k))
                    for name, methods in zip(names, worlds)
                    if other in methods and methods["MetaHeac"][group]["campaigns"]
                ]
                if not tests:
                    continue
                leads = [t[0] for _, t in tests]
                # A world with one campaign has no paired test: it calls nothing.
                ps = [t[4] if t[4] == t[4] else 1.0 for _, t in tests]
                adjusted = holm(ps)
                ahead, behind = sum(x > 0 for x in leads), sum(x < 0 for x in leads)

                def called(ps, sign):
                    return sum(p < 0.05 and sign * x > 0 for p, x in zip(ps, leads))

                lines.append(
                    f"| {other} | {group}, {metric} | {ahead} of {len(leads)} | {behind} "
                    f"| {statistics.median(leads):+.4f} | {fmt_p(sign_test(ahead, behind))} "
                    f"| {fmt_p(signed_rank(leads))} | {called(ps, 1)} / {called(ps, -1)} "
                    f"| {called(adjusted, 1)} / {called(adjusted, -1)} |"
                )
                notes += [
                    f"- {other} ahead of MetaHeac, {group} {metric}: {name} ({t[0]:+.4f}, {fmt_p(t[4])}; "
                    f"after Holm {fmt_p(q)})"
                    for (name, t), p, q in zip(tests, ps, adjusted)
                    if p < 0.05 and t[0] < 0
                ]
    if notes:
        lines += ["", "Worlds where a baseline is ahead at p < 0.05 on the world's own paired test:", ""] + notes
    return lines


def main():
    args = sys.argv[1:]
    one_stage = "--one-stage" in args
    args = [a for a in args if a != "--one-stage"]
    if not args or any("=" not in a for a in args):
        raise SystemExit(__doc__)
    print(
        "| world (cold / hot campaigns) | LR cold | MLP+pre cold | **MetaHeac cold** | vs LR | vs MLP+pre "
        "| LR hot | MLP+pre hot | **MetaHeac hot** |" + (" vs MLP one-stage |" if one_stage else "")
    )
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if one_stage else ""))
    worlds, names = [], []
    for arg in args:
        name, paths = arg.split("=", 1)
        methods = pooled([merged(fold.split(",")) for fold in paths.split("+")])
        worlds.append(methods)
        names.append(name)
        if "MetaHeac" not in methods:
            raise SystemExit(f"{name}: no MetaHeac run")

        def plain(method, group):
            # A group without campaigns (every test campaign cold, say) has no means.
            if method not in methods or methods[method][group]["mean_auc"]["mean"] is None:
                return "–"
            r = methods[method][group]
            return f"{r['mean_auc']['mean']:.4f}, P@5% {r['precision']['mean']:.3f}"

        mh = methods["MetaHeac"]
        cold = mh["cold"]
        mine = (
            "–"
            if cold["mean_auc"]["mean"] is None
            else f"**{cold['mean_auc']['mean']:.4f} ± {cold['mean_auc']['std']:.4f}, P@5% {cold['precision']['mean']:.3f}**"
        )
        print(
            f"| {name} ({mh['cold']['campaigns']} / {mh['hot']['campaigns']}) "
            f"| {plain('LR', 'cold')} | {plain('MLP+pre-training', 'cold')} "
            f"| {mine} "
            f"| {cell_vs(methods, 'LR', 'cold')} | {cell_vs(methods, 'MLP+pre-training', 'cold')} "
            f"| {plain('LR', 'hot')} | {plain('MLP+pre-training', 'hot')} "
            f"| **{plain('MetaHeac', 'hot')}** |"
            + (f" {cell_vs(methods, 'MLP one-stage', 'cold')} |" if one_stage else "")
        )
    others = ["LR", "MLP+pre-training"] + (["MLP one-stage"] if one_stage else [])
    plural = "s" if len(worlds) != 1 else ""
    print(f"\nAcross the {len(worlds)} world{plural} (one world one unit; lead = MetaHeac − method):\n")
    print("\n".join(across(worlds, others, names)))


if __name__ == "__main__":
    main()
