//! The steps of one campaign's online stage that every caller runs (`lookalike finetune`, `score`,
//! `expand` and the web page): how well the fine-tuned model finds held-out seeds, scoring with a
//! finite check, and the streamed best K of a pool of any size (the model folded for it: [`PoolScorer`]), split into shards when one machine is
//! not enough. Scoring has a synchronous and an asynchronous form over one body, as [`predict`] and
//! [`predict_async`] do (the web page scores the held-out seeds itself, yielding between chunks).

use crate::data::{Row, UserTable};
use crate::finetune::{predict, predict_async};
use crate::finite::{self, NonFinite};
pub use crate::fold::PoolScorer;
use crate::metrics::auc;
use crate::model::MetaHeac;
use crate::online::{OnlinePlan, Scored, TopK};

/// Rows per forward pass when scoring natively.
pub const SCORE_BATCH: usize = 4096;

/// Scores of `rows` for the campaign `ad`, checked finite.
pub fn score(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> Result<Vec<f32>, NonFinite> {
    let s = predict(model, users, ad, rows, batch);
    finite::check(&s, "a candidate's score")?;
    Ok(s)
}

/// [`score`] for ranking a pool: every forward pass holds exactly [`SCORE_BATCH`] rows (the last one
/// padded by repeating its last row). The CPU kernels choose their blocking, and so their order of
/// summation, by matrix shape: a user scored in a short pass can differ in the last bit from the
/// same user scored in a full one. With one shape for every pass a user's score does not depend on
/// which users share its pass, so shards, Spark partitions and Arrow batches of any size merge to
/// exactly the whole pool's list.
pub fn score_blocks(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
) -> Result<Vec<f32>, NonFinite> {
    let Some(&last) = rows.last() else {
        return Ok(Vec::new());
    };
    let whole = rows.len().div_ceil(SCORE_BATCH) * SCORE_BATCH;
    let mut padded = Vec::with_capacity(whole);
    padded.extend_from_slice(rows);
    padded.resize(whole, last);
    let mut s = score(model, users, ad, &padded, SCORE_BATCH)?;
    s.truncate(rows.len());
    Ok(s)
}

/// [`score`] with asynchronous read-back.
pub async fn score_async(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> Result<Vec<f32>, String> {
    let s = predict_async(model, users, ad, rows, batch).await?;
    finite::check(&s, "a candidate's score").map_err(|e| e.to_string())?;
    Ok(s)
}

/// AUC of the plan's held-out seeds against its random non-seeds (`None` without held-out seeds).
pub fn held_out_auc(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    plan: &OnlinePlan,
) -> Result<Option<f64>, NonFinite> {
    if plan.held.is_empty() {
        return Ok(None);
    }
    let s = score(model, users, ad, &plan.probe, SCORE_BATCH)?;
    Ok(auc(&plan.probe_labels, &s))
}

/// Which users a part of a split pool scores: those whose uid hashes to `index` of `count`. Hashing the
/// uid (not the line) makes the parts independent of how the pool's files are cut and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole pool.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn contains(&self, uid: u64) -> bool {
        self.count <= 1 || splitmix64(uid) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `I/N` with 0 ≤ I < N.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A fixed, well-mixed hash (SplitMix64's finaliser), the same on every machine and version.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Every user of `table` (a piece of a pool) with its score, in the table's order, scored as
/// [`PoolScorer::score`] does.
pub fn score_table(scorer: &PoolScorer, table: &UserTable) -> Result<Vec<Scored>, NonFinite> {
    let scores = scorer.score(table)?;
    Ok(table
        .uids
        .iter()
        .zip(scores)
        .map(|(&uid, score)| Scored { uid, score })
        .collect())
}

/// Scores the users of `table` (a piece of a streamed pool) and offers them to `top`; returns how
/// many were scored.
pub fn score_into(
    scorer: &PoolScorer,
    table: &UserTable,
    top: &mut TopK,
) -> Result<usize, NonFinite> {
    let scored = score_table(scorer, table)?;
    let n = scored.len();
    scored.into_iter().for_each(|s| top.offer(s));
    Ok(n)
}
