#!/usr/bin/env python3
"""Two `lookalike bench --json` runs of one method, paired per campaign: the same campaigns prepared
two ways (e.g. `prepare --fields all` against `--fields listed`), where one bench run cannot pair them.

usage: compare-bench.py A.json B.json [--method MetaHeac] [--method-b NAME]

With --method-b, B's method of that name is paired with A's --method (e.g. a baseline of an earlier
run against MetaHeac of a later one: deterministic per seed, so the earlier run's figures repeat).

Per group (cold, hot) and metric (AUC, P@k, each averaged over seeds per campaign): the mean of A − B,
campaigns where A wins and ties, and the two-sided paired t-test's p-value, as `bench` reports its own
comparisons. Campaigns are matched by aid; both runs must hold the same ones.
"""

import argparse
import json
import math


def betacf(a, b, x):
    # Continued fraction of the regularised incomplete beta function (Numerical Recipes, betacf).
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-14:
            break
    return h


def betai(a, b, x):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    bt = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x))
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * betacf(a, b, x) / a
    return 1.0 - bt * betacf(b, a, 1.0 - x) / b


def paired(a, b):
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    m = sum(d) / n
    wins = sum(x > 0 for x in d)
    ties = sum(x == 0 for x in d)
    if n < 2:
        return m, wins, ties, n, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    if sd == 0.0:
        return m, wins, ties, n, 1.0 if m == 0.0 else 0.0
    t = m / (sd / math.sqrt(n))
    df = n - 1
    p = betai(df / 2.0, 0.5, df / (df + t * t))
    return m, wins, ties, n, p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--method", default="MetaHeac")
    ap.add_argument("--method-b", help="B's method, when it is not --method")
    args = ap.parse_args()
    names = (args.method, args.method_b or args.method)
    runs = [json.load(open(p)) for p in (args.a, args.b)]
    print(f"A = {names[0]} of {args.a}, B = {names[1]} of {args.b}")
    print("| group | metric | A | B | A − B | campaigns A wins | p |")
    print("|---|---|---|---|---|---|---|")
    for group in ("cold", "hot"):
        per = [{c[0]: c for c in r["methods"][n][group]["per_campaign"]} for r, n in zip(runs, names)]
        if set(per[0]) != set(per[1]):
            raise SystemExit(f"{group}: the two runs hold different campaigns")
        for k, name in ((2, "AUC"), (3, "P@k")):
            aids = [a for a in per[0] if per[0][a][k] is not None and per[1][a][k] is not None]
            if not aids:
                continue
            xa = [per[0][a][k] for a in aids]
            xb = [per[1][a][k] for a in aids]
            m, wins, ties, n, p = paired(xa, xb)
            tied = f" ({ties} tied)" if ties else ""
            print(
                f"| {group} ({n}) | {name} | {sum(xa) / n:.4f} | {sum(xb) / n:.4f} | {m:+.4f} | {wins} of {n}{tied} | {p:.3f} |"
            )


if __name__ == "__main__":
    main()
