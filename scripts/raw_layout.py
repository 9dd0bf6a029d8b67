"""The Tencent raw layout that `lookalike prepare --raw` reads, written from plain Python structures; shared
by the scripts that make development worlds (real_data.py, independent_world.py)."""

import os


def write(out, users, campaigns, rows, rng):
    """users: uid -> {field: [tokens]}; campaigns: aid -> {ad field: value}; rows: aid -> [(uid, label)]."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "adFeature.csv"), "w") as f:
        f.write("aid,advertiserId,campaignId,creativeId,creativeSize,adCategoryId,productId,productType\n")
        for aid, a in campaigns.items():
            f.write(f"{aid},{a['advertiserId']},{a['campaignId']},{aid},{a['creativeSize']},"
                    f"{a['adCategoryId']},{a['productId']},{a['productType']}\n")
    with open(os.path.join(out, "userFeature.data"), "w") as f:
        for uid, fields in users.items():
            parts = [f"uid {uid}"] + [f"{k} {' '.join(map(str, v))}" for k, v in fields.items() if v]
            f.write("|".join(parts) + "\n")
    s1, s2 = [], []
    for aid, rs in rows.items():
        rs = list(rs)
        rng.shuffle(rs)
        cut = int(len(rs) * 0.75)
        s1 += [(aid, u, y) for u, y in rs[:cut]]
        s2 += [(aid, u, y) for u, y in rs[cut:]]
    rng.shuffle(s1)
    rng.shuffle(s2)
    with open(os.path.join(out, "train.csv"), "w") as f:
        f.write("aid,uid,label\n")
        for aid, u, y in s1:
            f.write(f"{aid},{u},{1 if y else -1}\n")
    with open(os.path.join(out, "test1_truth.csv"), "w") as f:
        for aid, u, y in s2:
            f.write(f"{aid},{u},{1 if y else -1}\n")
    seeds = sum(y for _, _, y in s1)
    print(f"{out}: {len(users)} users, {len(campaigns)} campaigns, {len(s1)} stage-1 rows "
          f"({seeds} seeds), {len(s2)} stage-2 rows")
