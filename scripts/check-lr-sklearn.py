#!/usr/bin/env python3
"""Checks `lookalike bench`'s LR against scikit-learn's LogisticRegression on the same features.

    lookalike bench --data D.lkd --methods lr --seeds 1 --json lr.json --dump-lr lr-features
    python3 scripts/check-lr-sklearn.py lr-features lr.json

For every test campaign it fits LogisticRegression(C=1, lbfgs, tol 1e-8) on AID.train.svm (the one-hot
user tokens of its stage-1 rows, exactly the columns our LR sees), scores AID.test.svm, and compares
mean campaign AUC per group with ours. Exits 1 if a group differs by more than 0.005.
"""
import json
import os
import sys

import numpy as np
from sklearn.datasets import load_svmlight_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def main():
    folder, report = sys.argv[1], json.load(open(sys.argv[2]))
    lr = report["methods"]["LR"]
    dim = 1 + max(
        int(tok.split(":")[0])
        for name in os.listdir(folder)
        for line in open(os.path.join(folder, name))
        for tok in line.split()[1:]
    )
    worst = 0.0
    for group in ["cold", "hot"]:
        ours, theirs = [], []
        for aid, seeds, auc in lr[group]["per_campaign"]:
            if auc is None:
                continue
            xtr, ytr = load_svmlight_file(os.path.join(folder, f"{aid}.train.svm"), n_features=dim, zero_based=True)
            xte, yte = load_svmlight_file(os.path.join(folder, f"{aid}.test.svm"), n_features=dim, zero_based=True)
            m = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-8, max_iter=5000).fit(xtr, ytr)
            theirs.append(roc_auc_score(yte, m.decision_function(xte)))
            ours.append(auc)
        a, b = float(np.mean(ours)), float(np.mean(theirs))
        worst = max(worst, abs(a - b))
        print(f"{group}: {len(ours)} campaigns, mean AUC ours {a:.5f}, scikit-learn {b:.5f}, "
              f"difference {a - b:+.5f}, largest per campaign {max(abs(x - y) for x, y in zip(ours, theirs)):.5f}")
    sys.exit(0 if worst <= 0.005 else 1)


if __name__ == "__main__":
    main()
