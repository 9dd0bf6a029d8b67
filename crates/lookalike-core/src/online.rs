//! The online stage's data plan, shared by the CLI (`finetune`, `expand`) and the web app: match a seed
//! list against the candidate pool, hold some seeds out, sample non-seeds (in one pass over a pool of
//! any size, [`PoolSampler`]), list the candidates to score (seeds excluded), and keep the audience's
//! best K ([`TopK`]).

use crate::data::{Row, UserTable};
use crate::seeds::SeedList;
use burn::config::Config;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};

#[derive(Config, Debug)]
pub struct OnlineConfig {
    /// Sampled non-seeds per training seed (the competition data has about 20).
    #[config(default = 20)]
    pub negatives_per_seed: usize,
    /// Seed lists with fewer matched users are refused.
    #[config(default = 10)]
    pub min_seeds: usize,
    /// Below this many matched seeds the expansion is flagged as noisy.
    #[config(default = 100)]
    pub small_seeds: usize,
    /// Fraction of the seeds held out of fine-tuning to measure how well the model finds them.
    #[config(default = 0.1)]
    pub holdout: f64,
    /// No hold-out below this many matched seeds (every seed is needed for training).
    #[config(default = 20)]
    pub min_seeds_for_holdout: usize,
    /// Random candidates the held-out seeds are ranked against.
    #[config(default = 2000)]
    pub probe_candidates: usize,
    /// Seeds averaged for the gate weights.
    #[config(default = 2048)]
    pub gate_rows: usize,
}

/// A seed list matched against the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedMatch {
    /// Distinct ids in the list.
    pub listed: usize,
    pub duplicates: usize,
    /// Pool indices of the ids found, list order.
    pub matched: Vec<u32>,
}

impl SeedMatch {
    pub fn rate(&self) -> f64 {
        if self.listed == 0 {
            0.0
        } else {
            self.matched.len() as f64 / self.listed as f64
        }
    }
}

/// Raw user id → pool index.
pub fn uid_index(users: &UserTable) -> HashMap<u64, u32> {
    users
        .uids
        .iter()
        .enumerate()
        .map(|(i, &u)| (u, i as u32))
        .collect()
}

pub fn match_seeds(list: &SeedList, index: &HashMap<u64, u32>) -> SeedMatch {
    SeedMatch {
        listed: list.uids.len(),
        duplicates: list.duplicates,
        matched: list
            .uids
            .iter()
            .filter_map(|u| index.get(u).copied())
            .collect(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnlineError {
    #[error("none of the {listed} seed ids is in the pool")]
    NoMatches { listed: usize },
    #[error("only {matched} seeds match the pool (minimum {min}); add seeds")]
    TooFew { matched: usize, min: usize },
    #[error("every user of the pool is a seed: nothing to expand to")]
    NothingToExpand,
}

/// What fine-tuning trains on, what it is checked against, and what is scored.
#[derive(Debug, Clone)]
pub struct OnlinePlan {
    pub train_seeds: Vec<u32>,
    /// Seeds kept out of fine-tuning (empty for small lists).
    pub held: Vec<u32>,
    pub negatives: Vec<u32>,
    /// Every pool user that is not a seed, in pool order.
    pub candidates: Vec<u32>,
    /// Fine-tuning rows: training seeds (label 1) then sampled non-seeds (label 0).
    pub rows: Vec<Row>,
    /// Held-out seeds then random candidates; `probe_labels` says which is which.
    pub probe: Vec<Row>,
    pub probe_labels: Vec<bool>,
    /// Training seeds the gate weights are averaged over.
    pub gate_rows: Vec<Row>,
    /// Set when the seed list is small enough to make the expansion noisy.
    pub warning: Option<String>,
}

fn rows(users: &[u32], label: bool) -> impl Iterator<Item = Row> + '_ {
    users.iter().map(move |&user| Row { user, label })
}

/// A uniform sample of the items offered, in one pass: each item draws a random key and the `cap`
/// smallest keys are kept (bottom-k sampling). The `n` smallest of them are a uniform sample of `n`
/// for any `n` up to `cap`, whatever `cap` is, so the draw does not depend on how much was kept.
struct BottomK<T> {
    cap: usize,
    seen: usize,
    heap: std::collections::BinaryHeap<Keyed<T>>,
}

/// An item with its sampling key (then its arrival, so equal keys still order one way).
struct Keyed<T>(u64, usize, T);

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

impl<T> BottomK<T> {
    fn new(cap: usize) -> Self {
        BottomK {
            cap,
            seen: 0,
            heap: std::collections::BinaryHeap::new(),
        }
    }

    /// Offers the next item under `key`; `make` runs only when it is kept.
    fn offer(&mut self, key: u64, make: impl FnOnce() -> T) {
        let (key, arrival) = (key, self.seen);
        self.seen += 1;
        if self.heap.len() < self.cap {
            self.heap.push(Keyed(key, arrival, make()));
        } else if self
            .heap
            .peek()
            .is_some_and(|top| (key, arrival) < (top.0, top.1))
        {
            self.heap.pop();
            self.heap.push(Keyed(key, arrival, make()));
        }
    }

    /// The items kept, smallest key first (a random order).
    fn into_sorted(self) -> Vec<T> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|k| k.2)
            .collect()
    }
}

/// The online stage's users drawn in one pass over a pool of any size and order: the seeds it holds,
/// and uniform samples of the other users for the sampled non-seeds and for the random candidates the
/// held-out seeds are ranked against. `T` is what is kept of a user: a pool index when the pool is in
/// memory, the user's features when it is streamed. Only the drawn users are kept.
pub struct PoolSampler<T> {
    seeds: HashSet<u64>,
    listed: usize,
    duplicates: usize,
    matched: Vec<T>,
    found: HashSet<u64>,
    negatives: BottomK<T>,
    probe: BottomK<T>,
    rng: StdRng,
    config: OnlineConfig,
    seed: u64,
}

impl<T> PoolSampler<T> {
    /// For the seed list `list` (user keys: the ids the pool's users are offered under).
    pub fn new(list: &SeedList, config: &OnlineConfig, seed: u64) -> Self {
        let seeds: HashSet<u64> = list.uids.iter().copied().collect();
        // Enough non-seeds for every listed seed, however many of them the pool holds.
        let cap = seeds.len().saturating_mul(config.negatives_per_seed);
        PoolSampler {
            listed: seeds.len(),
            duplicates: list.duplicates,
            seeds,
            matched: Vec::new(),
            found: HashSet::new(),
            negatives: BottomK::new(cap),
            probe: BottomK::new(config.probe_candidates),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_5a3b1e),
            config: config.clone(),
            seed,
        }
    }

    /// Offers the pool's next user, `key` its id; `item` runs only for users that are kept. A seed
    /// the pool lists twice is kept once.
    pub fn offer(&mut self, key: u64, item: impl Fn() -> T) {
        if self.seeds.contains(&key) {
            if self.found.insert(key) {
                self.matched.push(item());
            }
            return;
        }
        // Two keys for every non-seed, kept or not, so the draw depends only on the pool's order.
        let (a, b) = (self.rng.random::<u64>(), self.rng.random::<u64>());
        self.negatives.offer(a, &item);
        self.probe.offer(b, &item);
    }

    /// Users that are not seeds, offered so far.
    pub fn candidates(&self) -> usize {
        self.negatives.seen
    }

    /// Splits the seeds into training and held-out ones and draws the non-seeds.
    pub fn finish(self) -> Result<Sampled<T>, OnlineError> {
        let config = &self.config;
        let mut seeds = self.matched;
        if seeds.is_empty() {
            return Err(OnlineError::NoMatches {
                listed: self.listed,
            });
        }
        if seeds.len() < config.min_seeds {
            return Err(OnlineError::TooFew {
                matched: seeds.len(),
                min: config.min_seeds,
            });
        }
        let candidates = self.negatives.seen;
        if candidates == 0 {
            return Err(OnlineError::NothingToExpand);
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        seeds.shuffle(&mut rng);
        let n_hold = if seeds.len() >= config.min_seeds_for_holdout {
            (seeds.len() as f64 * config.holdout) as usize
        } else {
            0
        };
        let train = seeds.split_off(n_hold);
        let held = seeds;
        let mut negatives = self.negatives.into_sorted();
        negatives.truncate(train.len().saturating_mul(config.negatives_per_seed));
        let probe = if held.is_empty() {
            Vec::new()
        } else {
            self.probe.into_sorted()
        };
        let matched = train.len() + held.len();
        let warning = (matched < config.small_seeds).then(|| {
            format!(
                "only {matched} matched seeds: the expansion will be noisy ({} or more is better)",
                config.small_seeds
            )
        });
        Ok(Sampled {
            listed: self.listed,
            duplicates: self.duplicates,
            train,
            held,
            negatives,
            probe,
            candidates,
            warning,
        })
    }
}

/// What a [`PoolSampler`] drew.
#[derive(Debug, Clone)]
pub struct Sampled<T> {
    /// Distinct ids in the seed list, and ids listed twice.
    pub listed: usize,
    pub duplicates: usize,
    pub train: Vec<T>,
    /// Seeds kept out of fine-tuning (empty for small lists).
    pub held: Vec<T>,
    pub negatives: Vec<T>,
    /// Random non-seeds the held-out seeds are ranked against (empty without held-out seeds).
    pub probe: Vec<T>,
    /// Users of the pool that are not seeds.
    pub candidates: usize,
    pub warning: Option<String>,
}

impl<T> Sampled<T> {
    /// Matched seeds.
    pub fn seeds(&self) -> usize {
        self.train.len() + self.held.len()
    }
}

impl Sampled<u32> {
    /// The plan over a table holding these users (`T` = their table index); `candidates` are the
    /// users to score (for a pool in memory: every non-seed; empty when scoring streams separately).
    pub fn into_plan(self, candidates: Vec<u32>, config: &OnlineConfig) -> OnlinePlan {
        let mut train_rows: Vec<Row> = rows(&self.train, true).collect();
        train_rows.extend(rows(&self.negatives, false));
        let probe: Vec<Row> = rows(&self.held, false)
            .chain(rows(&self.probe, false))
            .collect();
        let probe_labels = (0..probe.len()).map(|i| i < self.held.len()).collect();
        OnlinePlan {
            gate_rows: rows(&self.train, true).take(config.gate_rows).collect(),
            train_seeds: self.train,
            held: self.held,
            negatives: self.negatives,
            candidates,
            rows: train_rows,
            probe,
            probe_labels,
            warning: self.warning,
        }
    }
}

/// One user's features, copied out of a streamed piece of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub uid: u64,
    pub single: Vec<u32>,
    pub multi: Vec<u32>,
    pub lens: Vec<u8>,
}

impl UserRow {
    pub fn of(table: &UserTable, u: usize) -> Self {
        UserRow {
            uid: table.uids[u],
            single: table.single_of(u).to_vec(),
            multi: table.multi_of(u).to_vec(),
            lens: table.lens_of(u).to_vec(),
        }
    }
}

impl Sampled<UserRow> {
    /// The drawn users as a table (appended to `table`, normally empty) and the plan over it, with no
    /// candidates: a streamed pool is scored in a pass of its own.
    pub fn into_table(
        self,
        mut table: UserTable,
        config: &OnlineConfig,
    ) -> (UserTable, OnlinePlan) {
        let mut put = |users: Vec<UserRow>| -> Vec<u32> {
            users
                .into_iter()
                .map(|r| {
                    table.push(r.uid, &r.single, &r.multi, &r.lens);
                    (table.len() - 1) as u32
                })
                .collect()
        };
        let indexed = Sampled {
            listed: self.listed,
            duplicates: self.duplicates,
            train: put(self.train),
            held: put(self.held),
            negatives: put(self.negatives),
            probe: put(self.probe),
            candidates: self.candidates,
            warning: self.warning,
        };
        let plan = indexed.into_plan(Vec::new(), config);
        (table, plan)
    }
}

/// Plans the online stage for the matched seeds out of a pool of `pool_size` users held in memory
/// (pool indices), with the same draw as a streamed pool ([`PoolSampler`]).
pub fn plan(
    pool_size: usize,
    seeds: &SeedMatch,
    config: &OnlineConfig,
    seed: u64,
) -> Result<OnlinePlan, OnlineError> {
    let list = SeedList {
        uids: seeds.matched.iter().map(|&u| u64::from(u)).collect(),
        duplicates: seeds.duplicates,
        had_header: false,
    };
    let mut sampler = PoolSampler::new(&list, config, seed);
    for u in 0..pool_size as u32 {
        sampler.offer(u64::from(u), || u);
    }
    let mut sampled = sampler.finish().map_err(|e| match e {
        OnlineError::NoMatches { .. } => OnlineError::NoMatches {
            listed: seeds.listed,
        },
        e => e,
    })?;
    sampled.listed = seeds.listed;
    let is_seed: HashSet<u32> = seeds.matched.iter().copied().collect();
    let candidates = (0..pool_size as u32)
        .filter(|u| !is_seed.contains(u))
        .collect();
    Ok(sampled.into_plan(candidates, config))
}

/// Audience size for a percentage of `candidates` (at least one user).
pub fn audience_size(candidates: usize, pct: f64) -> usize {
    ((candidates as f64 * pct / 100.0).floor() as usize).clamp(1, candidates.max(1))
}

/// One scored user of an audience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub uid: u64,
    pub score: f32,
}

impl Scored {
    /// Audience order: the higher score first, on a tie the lower uid, so any split of a pool into
    /// parts (shards, partitions) merges to the same list.
    pub fn rank(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.uid.cmp(&other.uid))
    }
}

/// Wraps [`Scored`] so the heap's top is the worst user kept.
struct Kept(Scored);

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.0.rank(&other.0).is_eq()
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.rank(&other.0)
    }
}

/// The best `k` users offered, in memory bounded by `k` whatever the pool's size.
pub struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Kept>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k.min(1 << 20) + 1),
        }
    }

    pub fn offer(&mut self, s: Scored) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Kept(s));
        } else if let Some(worst) = self.heap.peek()
            && s.rank(&worst.0).is_lt()
        {
            self.heap.pop();
            self.heap.push(Kept(s));
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The users kept, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|k| k.0).collect();
        v.sort_by(|a, b| a.rank(b));
        v
    }

    /// The users kept so far, best first (the heap stays, e.g. to go on offering).
    pub fn sorted(&self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.iter().map(|k| k.0).collect();
        v.sort_by(|a, b| a.rank(b));
        v
    }
}
