//! The online stage's data plan, shared by the CLI (`lookalike expand`) and the web app: match a seed
//! list against the candidate pool, hold some seeds out, sample non-seeds, and list the candidates to
//! score (seeds excluded).

use crate::data::{Row, UserTable};
use crate::seeds::SeedList;
use burn::config::Config;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
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

/// Plans the online stage for the matched seeds out of a pool of `pool_size` users.
pub fn plan(
    pool_size: usize,
    seeds: &SeedMatch,
    config: &OnlineConfig,
    seed: u64,
) -> Result<OnlinePlan, OnlineError> {
    let distinct: HashSet<u32> = seeds.matched.iter().copied().collect();
    let mut seeds_sorted: Vec<u32> = distinct.iter().copied().collect();
    seeds_sorted.sort_unstable();
    if seeds_sorted.is_empty() {
        return Err(OnlineError::NoMatches {
            listed: seeds.listed,
        });
    }
    let mut seeds = seeds_sorted;
    if seeds.len() < config.min_seeds {
        return Err(OnlineError::TooFew {
            matched: seeds.len(),
            min: config.min_seeds,
        });
    }
    let candidates: Vec<u32> = (0..pool_size as u32)
        .filter(|u| !distinct.contains(u))
        .collect();
    if candidates.is_empty() {
        return Err(OnlineError::NothingToExpand);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    seeds.shuffle(&mut rng);
    let n_hold = if seeds.len() >= config.min_seeds_for_holdout {
        (seeds.len() as f64 * config.holdout) as usize
    } else {
        0
    };
    let (held, train) = seeds.split_at(n_hold);
    let n_neg = (train.len() * config.negatives_per_seed).min(candidates.len());
    let negatives: Vec<u32> = candidates.sample(&mut rng, n_neg).copied().collect();
    let mut train_rows: Vec<Row> = rows(train, true).collect();
    train_rows.extend(rows(&negatives, false));
    let others: Vec<u32> = if held.is_empty() {
        Vec::new()
    } else {
        let n = config.probe_candidates.min(candidates.len());
        candidates.sample(&mut rng, n).copied().collect()
    };
    let probe: Vec<Row> = rows(held, false).chain(rows(&others, false)).collect();
    let probe_labels = (0..probe.len()).map(|i| i < held.len()).collect();
    let warning = (seeds.len() < config.small_seeds).then(|| {
        format!(
            "only {} matched seeds: the expansion will be noisy ({} or more is better)",
            seeds.len(),
            config.small_seeds
        )
    });
    Ok(OnlinePlan {
        train_seeds: train.to_vec(),
        held: held.to_vec(),
        negatives,
        candidates,
        rows: train_rows,
        probe,
        probe_labels,
        gate_rows: rows(train, true).take(config.gate_rows).collect(),
        warning,
    })
}

/// Audience size for a percentage of `candidates` (at least one user).
pub fn audience_size(candidates: usize, pct: f64) -> usize {
    ((candidates as f64 * pct / 100.0).floor() as usize).clamp(1, candidates.max(1))
}
