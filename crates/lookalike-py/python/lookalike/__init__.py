"""Look-alike audience expansion (MetaHeac) from Python.

The online stage of the ``lookalike`` command, for engines that spread work over machines:

* ``Model.load(path)`` / ``Model.from_bytes(b)``: a record written by ``lookalike pretrain`` (a
  general model) or ``lookalike finetune`` (a campaign's model).
* ``general.finetune(pool, seeds, like_aid=... | ad={...})``: the campaign's model, exactly as
  ``lookalike finetune`` makes it (same seed, same record).
* ``score(model, batch)``: scores of a ``pyarrow.RecordBatch`` of users (``uid`` plus the user
  fields, named as in ``userFeature.data``; multi-valued fields as lists).
* ``top_k(model, batches, k, exclude=...)``: the best ``k`` users of any number of batches, in
  memory bounded by ``k``.
* ``spark_top_k(df, model, k=..., exclude=...)``: the same over a Spark DataFrame with
  ``mapInArrow``: each partition keeps its best ``k``, the driver merges them. The result equals
  ``lookalike score`` on the same pool (ties go to the lower uid everywhere).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import pyarrow as pa

from ._native import SCORE_BATCH, Audience, Model, audience_size_for

__all__ = ["Audience", "Model", "audience_size_for", "score", "top_k", "spark_top_k", "SCORE_BATCH"]

SCORED_SCHEMA = "uid long, score float"


def _to_ipc(batches: Iterable[pa.RecordBatch]) -> bytes:
    """An Arrow IPC stream of the batches (how they cross into the native code)."""
    sink = pa.BufferOutputStream()
    writer = None
    for b in batches:
        if writer is None:
            writer = pa.ipc.new_stream(sink, b.schema)
        writer.write_batch(b)
    if writer is None:
        return b""
    writer.close()
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def _whole_blocks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The users of ``batches`` regrouped into batches of whole scoring passes.

    The native code scores in passes of exactly ``SCORE_BATCH`` users, padding a batch's last pass;
    regrouping (Spark's Arrow batches hold 10,000 rows by default) pads once per partition instead.
    """
    buf: list = []
    n = 0
    for b in batches:
        if not b.num_rows:
            continue
        buf.append(b)
        n += b.num_rows
        if n >= 4 * SCORE_BATCH:
            table = pa.Table.from_batches(buf)
            whole = n // SCORE_BATCH * SCORE_BATCH
            yield from table.slice(0, whole).combine_chunks().to_batches()
            rest = table.slice(whole)
            buf, n = rest.to_batches(), rest.num_rows
    if n:
        yield from pa.Table.from_batches(buf).combine_chunks().to_batches()


def score(model: Model, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Every user's score with a campaign's model: (``uid`` int64, ``score`` float32), input order."""
    table = _from_ipc(model.score_ipc(_to_ipc([batch]))).combine_chunks()
    if table.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=pa.schema([("uid", pa.int64()), ("score", pa.float32())]))
    return table.to_batches()[0]


def top_k(
    model: Model,
    batches: Iterable[pa.RecordBatch],
    k: int,
    exclude: Optional[Iterable[int]] = None,
) -> pa.Table:
    """The best ``k`` users of ``batches`` (users in ``exclude`` left out), best first."""
    audience = Audience(k, list(exclude) if exclude is not None else None)
    for b in _whole_blocks(batches):
        audience.score_ipc(model, _to_ipc([b]))
    return _from_ipc(audience.to_ipc())


def _partition_top_k(record, k: int, exclude):
    """mapInArrow's function: one partition's best ``k`` (``record`` and ``exclude`` broadcast)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = Model.from_bytes(record.value)
        audience = Audience(k, exclude.value)
        for b in _whole_blocks(batches):
            audience.score_ipc(model, _to_ipc([b]))
        yield from _from_ipc(audience.to_ipc()).to_batches()

    return run


def spark_top_k(
    df,
    model: Model,
    k: Optional[int] = None,
    audience_pct: Optional[float] = None,
    exclude: Optional[Iterable[int]] = None,
) -> pa.Table:
    """The best users of a Spark DataFrame of users (a pool read with ``spark.read.parquet``).

    Give ``k`` or ``audience_pct`` (a percentage of the candidates: the pool less ``exclude``).
    The campaign's record is broadcast to the executors once; each partition scores its users and
    keeps its best ``k`` (``DataFrame.mapInArrow``); the driver merges those lists.
    """
    from pyspark.sql import functions as F

    if (k is None) == (audience_pct is None):
        raise ValueError("give exactly one of k and audience_pct")
    if not model.is_campaign:
        raise ValueError("a general model, not a campaign's: fine-tune it first (Model.finetune)")
    excluded = sorted(set(int(u) for u in exclude)) if exclude is not None else []
    # Spark reads an unsigned 64-bit uid (as `lookalike convert` writes it) as decimal(20,0).
    if dict(df.dtypes)["uid"].startswith("decimal"):
        df = df.withColumn("uid", F.col("uid").cast("long"))
    if k is None:
        candidates = df.count()
        if excluded:
            candidates -= df.filter(F.col("uid").isin(excluded)).select("uid").distinct().count()
        k = audience_size_for(candidates, audience_pct)
    sc = df.sparkSession.sparkContext
    record = sc.broadcast(model.to_bytes())
    excluded_b = sc.broadcast(excluded)
    parts = df.mapInArrow(_partition_top_k(record, k, excluded_b), SCORED_SCHEMA)
    merged = Audience(k)
    for batch in parts.toArrow().to_batches():
        merged.merge_ipc(_to_ipc([batch]))
    record.unpersist()
    excluded_b.unpersist()
    return _from_ipc(merged.to_ipc())
