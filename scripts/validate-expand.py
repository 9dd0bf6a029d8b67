#!/usr/bin/env python3
"""Expansion-setting check on validation campaigns (never test campaigns).

For each campaign id given (e.g. those `lookalike eval --on validation` lists: training campaigns held out
of meta-training), runs `lookalike expand` with the campaign's stage-1 seeds (train.csv, label 1) against
non-seeds sampled from the whole pool, scores every user, and reports the AUC on the campaign's stage-2 rows
(test1_truth.csv: exposed converters against exposed non-converters), which neither meta-training nor
validation read. Extra arguments after `--` go to every `expand` run.

usage: scripts/validate-expand.py LOOKALIKE RECORD RAW_DIR AID[,AID…] [-- EXPAND_FLAGS…]
"""
import csv, os, subprocess, sys, tempfile

def auc(labels, scores):
    pairs = sorted(zip(scores, labels))
    pos = sum(labels); neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + j + 1) / 2.0  # 1-based average rank of the tie block
        rank_sum += avg * sum(l for _, l in pairs[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)

def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        k = args.index("--"); extra = args[k + 1:]; args = args[:k]
    binary, record, raw, aids = args[0], args[1], args[2], args[3].split(",")
    def opener(name):
        p = os.path.join(raw, name)
        if os.path.exists(p):
            return open(p)
        import gzip
        return gzip.open(p + ".gz", "rt")
    seeds, truth = {}, {}
    with opener("train.csv") as f:
        for r in csv.DictReader(f):
            if r["aid"] in aids and r["label"] == "1":
                seeds.setdefault(r["aid"], []).append(r["uid"])
    with opener("test1_truth.csv") as f:
        for row in csv.reader(f):
            if row and row[0] in aids:
                truth.setdefault(row[0], []).append((row[1], row[2] == "1"))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for aid in aids:
            sfile = os.path.join(tmp, "seeds.txt")
            with open(sfile, "w") as f:
                f.write("\n".join(seeds.get(aid, [])) + "\n")
            audience = os.path.join(tmp, "audience.csv")
            run = subprocess.run([binary, "expand", "--model", record, "--raw", raw, "--seeds", sfile,
                                  "--like-aid", aid, "--top", "100000000", "--out", audience] + extra,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if run.returncode != 0:
                reason = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed"
                print(f"{aid}\tskipped: {reason}", flush=True)
                continue
            score = {}
            with open(audience) as f:
                for r in csv.DictReader(f):
                    score[r["uid"]] = float(r["score"])
            rows = [(score[u], l) for u, l in truth.get(aid, []) if u in score]
            a = auc([l for _, l in rows], [s for s, _ in rows])
            out.append(a)
            print(f"{aid}\t{len(seeds.get(aid, []))} seeds\t{len(rows)} stage-2 rows\tAUC {a if a is None else round(a, 4)}", flush=True)
    v = [a for a in out if a is not None]
    print(f"mean AUC {sum(v) / len(v):.4f} over {len(v)} campaigns")

main()
