#!/usr/bin/env python3
"""A development world from a generator that shares no code and no story with `lookalike synth`, in the
Tencent raw layout that `lookalike prepare --raw` reads. It stands in for "data this project never saw":
written after every default was fixed, to check them, never to choose them.

The story (a logistic model over latent tastes, as a marketer's data might look):
* Each user has a latent taste z in R^6. The single-valued fields are noisy read-outs of it (age from z0,
  education from z2, consumption ability from z3, a city from a region chosen by z4 and z5) or noise
  (gender, os, carrier, connection type). Interests (120 tokens, several per user) are drawn with
  probability ∝ exp(v_i · z); keywords (4,000 tokens, heavy-tailed) come half from a topic chosen by z and
  half from a global Zipf law; 30 % of users have no keywords at all.
* Campaigns belong to advertisers (12); a campaign's direction a = its advertiser's plus its own, so
  campaigns of one advertiser are alike and the others are not. Its log-odds of converting are
  b + s·(a · z) + the effects of its 0–3 trigger interests + an age skew + noise per user and campaign;
  b sets its base rate (1–12 %).
* Exposure is targeted: a campaign draws 3–17 % of the users and shows to each with probability
  min(1, 1.6 σ(0.8 a · z)), as real delivery favours likely converters, so its non-seeds are not a random
  sample either.
* Each campaign's rows are split at random 75 % / 25 % into stage 1 (train.csv) and stage 2
  (test1_truth.csv).

usage: independent_world.py OUT_DIR [--users 30000] [--campaigns 50] [--seed 11]
"""

import argparse
import math
import random

from raw_layout import write

DIM = 6


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def gauss_vec(rng, scale=1.0):
    return [rng.gauss(0.0, scale) for _ in range(DIM)]


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x > -40 else 0.0


def bucket(x, edges):
    return 1 + sum(x > e for e in edges)


def zipf(rng, n, s=1.1):
    # Rejection on a continuous power law: rank r with density ∝ r^-(s+1).
    while True:
        r = int(rng.paretovariate(s))
        if 1 <= r <= n:
            return r


def pick_weighted(rng, weights, k):
    total = sum(weights)
    out = set()
    for _ in range(k * 3):
        if len(out) >= k:
            break
        x = rng.random() * total
        acc = 0.0
        for i, w in enumerate(weights):
            acc += w
            if acc >= x:
                out.add(i)
                break
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--users", type=int, default=30000)
    ap.add_argument("--campaigns", type=int, default=50)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    interests = [gauss_vec(rng) for _ in range(120)]
    topics = [gauss_vec(rng) for _ in range(25)]
    regions = [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(15)]

    users = {}
    tastes = {}
    for n in range(args.users):
        uid = 10_000 + n * 7
        z = gauss_vec(rng)
        tastes[uid] = z
        f = {}
        f["age"] = [bucket(z[0] + rng.gauss(0, 0.7), [-1.2, -0.5, 0.0, 0.5, 1.2])]
        f["gender"] = [rng.choice([1, 2])]
        f["education"] = [bucket(z[2] + rng.gauss(0, 0.9), [-1.0, -0.3, 0.3, 1.0, 1.6])]
        f["consumptionAbility"] = [bucket(z[3] + rng.gauss(0, 0.8), [-0.4, 0.6])]
        region = min(range(len(regions)),
                     key=lambda r: (regions[r][0] - z[4]) ** 2 + (regions[r][1] - z[5]) ** 2
                     + rng.gauss(0, 0.3))
        f["LBS"] = [region * 20 + rng.randrange(20)]
        k = max(1, min(15, int(rng.expovariate(1 / 5))))
        w = [math.exp(min(30.0, 0.9 * dot(v, z))) for v in interests]
        f["interest1"] = [i + 1 for i in pick_weighted(rng, w, k)]
        if rng.random() < 0.7:
            tw = [math.exp(min(30.0, 1.2 * dot(t, z))) for t in topics]
            topic = pick_weighted(rng, tw, 1)[0]
            kws = []
            for _ in range(rng.randint(1, 6)):
                if rng.random() < 0.5:
                    kws.append(topic * 160 + zipf(rng, 160))
                else:
                    kws.append(zipf(rng, 4000))
            f["kw1"] = sorted(set(kws))
        f["os"] = [rng.choice([1, 2])]
        f["carrier"] = [rng.choice([0, 1, 2, 3])]
        f["ct"] = [rng.choice([1, 2, 3, 4])]
        users[uid] = f

    uids = list(users)
    advertisers = [gauss_vec(rng) for _ in range(12)]
    campaigns, rows = {}, {}
    for c in range(args.campaigns):
        aid = 3000 + c * 13
        adv = rng.randrange(12)
        a = [x + y for x, y in zip(advertisers[adv], gauss_vec(rng, 0.7))]
        norm = math.sqrt(dot(a, a)) or 1.0
        a = [x / norm for x in a]
        strength = rng.uniform(0.8, 2.0)
        triggers = {rng.randrange(1, 121): rng.uniform(0.8, 2.0) for _ in range(rng.randint(0, 3))}
        age_skew = {rng.randint(1, 6): rng.uniform(-1.0, 1.0) for _ in range(2)}
        base = rng.uniform(0.01, 0.12)
        b = math.log(base / (1 - base)) - 0.5 * strength
        campaigns[aid] = {"advertiserId": adv + 1, "campaignId": 500 + c, "creativeSize": rng.choice([20, 35, 59, 79]),
                          "adCategoryId": 10 + adv % 5, "productId": 900 + c, "productType": rng.choice([4, 6, 9, 11])}
        exposed = rng.sample(uids, rng.randint(len(uids) // 30, len(uids) // 6))
        rs = []
        for u in exposed:
            z = tastes[u]
            if rng.random() > sigmoid(0.8 * dot(a, z)) * 1.6:  # targeted delivery
                continue
            logit = b + strength * dot(a, z) + rng.gauss(0, 0.6)
            logit += sum(e for t, e in triggers.items() if t in users[u].get("interest1", []))
            logit += age_skew.get(users[u]["age"][0], 0.0)
            rs.append((u, rng.random() < sigmoid(logit)))
        rows[aid] = rs

    write(args.out, users, campaigns, rows, rng)


if __name__ == "__main__":
    main()
