"""The Python package and its Spark path, end to end (run by scripts/test-spark.sh).

A tiny synthetic world; a general model (`lookalike pretrain`); one campaign's model
(`lookalike finetune`); its pool as Parquet (`lookalike convert`). Then:

1. `lookalike.Model.finetune` from Python gives the same campaign model as the CLI: its audience
   (scored in Python, no Spark) equals the CLI's.
2. pyspark in local mode (`local[2]`) scores the Parquet pool with the campaign's record through
   `DataFrame.mapInArrow`, several partitions and several Arrow batches each, and the merged top K
   equals `lookalike score` on the same pool: same users, same order, same float32 scores.
3. `audience_pct` counts the candidates as the CLI does; a general model cannot score.
"""

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lookalike


def run(bin_path, *args):
    out = subprocess.run([bin_path, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"lookalike {' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def read_csv_audience(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["uid", "score"], rows[0]
    uids = np.array([int(r[0]) for r in rows[1:]], dtype=np.int64)
    # The CLI writes f32 scores in their shortest round-trip form: parsed back, they are exact.
    scores = np.array([np.float32(r[1]) for r in rows[1:]], dtype=np.float32)
    return uids, scores


def same_audience(what, table, uids, scores):
    got_u = table.column("uid").to_numpy()
    got_s = table.column("score").to_numpy()
    assert len(got_u) == len(uids), f"{what}: {len(got_u)} users, the CLI {len(uids)}"
    assert np.array_equal(got_u, uids), f"{what}: users or order differ from the CLI's"
    assert np.array_equal(got_s, scores), f"{what}: scores differ from the CLI's (bit for bit)"
    print(f"ok: {what}: {len(uids)} users, same order and float32 scores as the CLI")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    raw, data = work / "raw", work / "data.lkd"
    general, campaign = work / "general.rec", work / "campaign.rec"
    pool = work / "pool.parquet"

    run(a.bin, "synth", "--out", raw, "--scale", "tiny", "--seed", "11")
    run(a.bin, "prepare", "--raw", raw, "--out", data, "--cold-threshold", "30")
    run(a.bin, "pretrain", "--data", data, "--out", general, "--max-iterations", "30", "--seed", "3")
    run(a.bin, "convert", "--from", raw / "userFeature.data", "--to", pool)

    # One campaign's stage-1 positives as the seed list.
    with open(raw / "train.csv") as f:
        rows = list(csv.reader(f))[1:]
    aid = rows[0][0]
    seeds = sorted({int(r[1]) for r in rows if r[0] == aid and r[2] == "1"})
    assert len(seeds) >= 5, f"campaign {aid} has {len(seeds)} seeds"
    seed_file = work / "seeds.csv"
    seed_file.write_text("uid\n" + "\n".join(map(str, seeds)) + "\n")
    run(a.bin, "finetune", "--model", general, "--pool", raw, "--seeds", seed_file,
        "--like-aid", aid, "--out", campaign)
    k = 150
    cli_out = work / "cli.csv"
    run(a.bin, "score", "--model", campaign, "--pool", pool, "--exclude", seed_file,
        "--top", k, "--out", cli_out)
    cli_u, cli_s = read_csv_audience(cli_out)
    pool_users = pq.read_metadata(pool).num_rows
    print(f"world: {pool_users} users, campaign {aid} with {len(seeds)} seeds, top {k}")

    model = lookalike.Model.load(str(campaign))
    assert model.is_campaign

    # 1. Fine-tuning from Python is the CLI's fine-tuning.
    tuned = lookalike.Model.load(str(general)).finetune(str(raw), seeds, like_aid=aid)
    assert tuned.is_campaign
    batches = pq.read_table(pool).to_batches(max_chunksize=700)
    same_audience("Model.finetune + top_k (pyarrow)", lookalike.top_k(tuned, batches, k, seeds),
                  cli_u, cli_s)
    # Scores of a batch come back in its order, and agree with the heap's.
    assert lookalike.score(model, batches[0].slice(0, 0)).num_rows == 0
    first = lookalike.score(model, batches[0])
    assert first.column("uid").to_pylist() == batches[0].column("uid").to_pylist()
    by_uid = dict(zip(cli_u.tolist(), cli_s.tolist()))
    for u, s in zip(first.column("uid").to_pylist(), first.column("score").to_numpy()):
        if u in by_uid:
            assert np.float32(by_uid[u]) == s, (u, s, by_uid[u])

    # 2. Spark: local[2], 4 partitions, Arrow batches of 250 rows.
    from pyspark.sql import SparkSession

    # The executors' Python must be the one with `lookalike` installed (on a cluster: the package
    # installed on every node, or shipped with --py-files / a packed environment).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("lookalike-test")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "250")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(str(pool)).repartition(4)
        assert df.rdd.getNumPartitions() == 4
        start = time.time()
        top = lookalike.spark_top_k(df, model, k=k, exclude=seeds)
        took = time.time() - start
        same_audience(f"Spark local[2] mapInArrow ({took:.1f} s)", top, cli_u, cli_s)

        # 3. --audience-pct: the same candidate count and list as the CLI's.
        pct_out = work / "cli-pct.csv"
        run(a.bin, "score", "--model", campaign, "--pool", pool, "--exclude", seed_file,
            "--audience-pct", "3", "--out", pct_out)
        pu, ps = read_csv_audience(pct_out)
        same_audience("Spark with audience_pct=3",
                      lookalike.spark_top_k(df, model, audience_pct=3, exclude=seeds), pu, ps)
        try:
            lookalike.spark_top_k(df, lookalike.Model.load(str(general)), k=5)
            raise AssertionError("a general model scored")
        except ValueError as e:
            assert "a general model" in str(e), e
        print("ok: a general model is refused")
    finally:
        spark.stop()
    print("spark test: all checks passed")


if __name__ == "__main__":
    main()
