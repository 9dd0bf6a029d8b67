//! Synthetic look-alike worlds in exactly the Tencent raw layout, from one of three generative stories
//! ([`Story`]), so that methods are compared on more than one kind of world.
//!
//! In every story users have latent tastes (a primary and a secondary category) that their interest, keyword and
//! topic tokens and their demographics reveal noisily. Each campaign belongs to a category, so
//! campaigns of one category convert the same kind of user: tasks are related and the gates have
//! something to learn. Seed counts are long-tailed (both cold and hot campaigns exist), about one seed
//! for twenty non-seeds. Everything is drawn from one seeded RNG.

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::raw;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Seconds: for tests.
    Tiny,
    /// The bundled demo world: minutes on two cores.
    Demo,
    /// Close to the paper's data: ≈170 campaigns, ≈400k seeds, ≈2M stage-2 rows.
    Paper,
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Scale::Tiny),
            "demo" => Ok(Scale::Demo),
            "paper" => Ok(Scale::Paper),
            _ => Err(format!(
                "unknown scale {s:?} (expected tiny, demo or paper)"
            )),
        }
    }
}

/// What makes a user convert for a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Story {
    /// Taste affinity: a campaign converts users whose latent category is its own (tasks share one
    /// structure; the bundled demo).
    #[default]
    Taste,
    /// A few specific tokens: each campaign is triggered by a handful of interest, keyword and topic
    /// tokens (drawn partly from a pool its category shares), on heavy-tailed vocabularies; taste
    /// matters only a little. A per-campaign LR on one-hot tokens is strong here.
    Tokens,
    /// Campaign-specific demographics and idiosyncrasies: each campaign has its own effects of age,
    /// gender, education, consumption ability and region and of a few dozen random tokens; many fields
    /// are missing; campaigns draw their rows from different regions, so they share few users.
    Skew,
}

impl std::str::FromStr for Story {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "taste" => Ok(Story::Taste),
            "tokens" => Ok(Story::Tokens),
            "skew" => Ok(Story::Skew),
            _ => Err(format!(
                "unknown story {s:?} (expected taste, tokens or skew)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthConfig {
    #[serde(default)]
    pub story: Story,
    pub users: usize,
    pub campaigns: usize,
    pub categories: usize,
    /// Median seeds per campaign (log-normal, σ = `seed_spread`).
    pub median_seeds: f64,
    pub seed_spread: f64,
    pub max_seeds: usize,
    /// Non-seeds per seed in stage 1.
    pub negatives_per_seed: usize,
    /// Stage-2 rows as a fraction of stage-1 rows.
    pub stage2_fraction: f64,
    /// kw1 vocabulary size (other keyword/topic fields scale from it).
    pub keywords: usize,
    pub seed: u64,
}

impl SynthConfig {
    pub fn new(scale: Scale, seed: u64) -> Self {
        let base = SynthConfig {
            story: Story::Taste,
            users: 3_000,
            campaigns: 12,
            categories: 4,
            median_seeds: 25.0,
            seed_spread: 0.9,
            max_seeds: 300,
            negatives_per_seed: 20,
            stage2_fraction: 0.25,
            keywords: 600,
            seed,
        };
        match scale {
            Scale::Tiny => base,
            Scale::Demo => SynthConfig {
                users: 40_000,
                campaigns: 32,
                categories: 6,
                median_seeds: 120.0,
                seed_spread: 1.0,
                max_seeds: 1_500,
                keywords: 4_000,
                ..base
            },
            Scale::Paper => SynthConfig {
                users: 2_000_000,
                campaigns: 170,
                categories: 12,
                median_seeds: 1_500.0,
                seed_spread: 1.0,
                max_seeds: 20_000,
                stage2_fraction: 0.24,
                keywords: 60_000,
                ..base
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthSummary {
    pub config: SynthConfig,
    pub users: usize,
    pub campaigns: usize,
    pub seeds: usize,
    pub stage1_rows: usize,
    pub stage2_rows: usize,
}

struct User {
    primary: usize,
    secondary: usize,
    age: u32,
    gender: u32,
    education: u32,
    consumption: u32,
    lbs: u32,
    /// (field index into the multi-valued fields, token) of every token the user has.
    tokens: Vec<(usize, usize)>,
}

/// One N(0, 1) draw (Box–Muller: rand 0.10 has no normal distribution without rand_distr).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A token of a field: mostly from the user's categories, otherwise noise. Tokens of category k are the
/// ids ≡ k (mod K), Zipf-like within the category.
fn token(rng: &mut StdRng, u: &User, vocab: usize, k: usize, purity: f64) -> usize {
    let r: f64 = rng.random();
    let cat = if r < purity {
        u.primary
    } else if r < purity + (1.0 - purity) * 0.4 {
        u.secondary
    } else {
        return rng.random_range(1..=vocab);
    };
    let per_cat = (vocab / k).max(1);
    let rank = ((per_cat as f64).powf(rng.random::<f64>()) as usize).min(per_cat) - 1;
    (rank * k + cat) % vocab + 1
}

/// A Zipf-like token over the whole vocabulary (rank r with probability ∝ 1/r).
fn zipf(rng: &mut StdRng, vocab: usize) -> usize {
    let r = (vocab as f64).powf(rng.random::<f64>()) as usize;
    r.clamp(1, vocab)
}

fn uid_of(i: usize) -> u64 {
    // Not dense, as real ids are not.
    100_000 + 13 * i as u64 + (7 * i as u64) % 11
}

/// Writes a world into `out` (created if needed): the four raw files, gzipped when `gzip`.
pub fn synth(out: &Path, config: &SynthConfig, gzip: bool) -> Result<SynthSummary> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let k = config.categories.max(2);
    // Category popularity is long-tailed, as ad categories are.
    let cat_weights: Vec<f64> = (0..k).map(|c| 1.0 / (1.0 + c as f64).sqrt()).collect();
    let pick = |rng: &mut StdRng| {
        let total: f64 = cat_weights.iter().sum();
        let mut r = rng.random::<f64>() * total;
        for (c, w) in cat_weights.iter().enumerate() {
            r -= w;
            if r <= 0.0 {
                return c;
            }
        }
        k - 1
    };
    let story = config.story;
    let mut users: Vec<User> = (0..config.users)
        .map(|_| {
            let primary = pick(&mut rng);
            let mut secondary = pick(&mut rng);
            if secondary == primary {
                secondary = (primary + 1 + rng.random_range(0..k - 1)) % k;
            }
            // Demographics lean with the primary taste.
            let age = if rng.random::<f64>() < 0.5 {
                (primary % 5) as u32 + 1
            } else {
                rng.random_range(1..=5)
            };
            let gender = if rng.random::<f64>() < 0.65 {
                (primary % 2) as u32 + 1
            } else {
                rng.random_range(1..=2)
            };
            let education = ((primary + rng.random_range(0..3)) % 7) as u32 + 1;
            let consumption = if rng.random::<f64>() < 0.6 {
                (secondary % 2) as u32 + 1
            } else {
                rng.random_range(1..=2)
            };
            User {
                primary,
                secondary,
                age,
                gender,
                education,
                consumption,
                lbs: rng.random_range(1..=400),
                tokens: Vec::new(),
            }
        })
        .collect();
    let ext = if gzip { ".gz" } else { "" };
    let write = |name: &str, body: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> Result<()> {
        let path = out.join(format!("{name}{ext}"));
        write_atomic(&path, |w| {
            if gzip {
                let mut gz = flate2::GzBuilder::new().write(w, flate2::Compression::best());
                body(&mut gz)?;
                gz.finish()?;
                Ok(())
            } else {
                body(w)
            }
        })
    };

    // userFeature.data
    let kw = config.keywords.max(k * 4);
    let fields_vocab = [
        ("interest1", 120, 3..=14, 0.55, 0.02),
        ("interest2", 80, 2..=8, 0.5, 0.1),
        ("interest3", 12, 1..=3, 0.45, 0.6),
        ("kw1", kw, 1..=5, 0.5, 0.05),
        ("kw2", kw / 2, 1..=5, 0.5, 0.3),
        ("topic1", kw / 4, 1..=5, 0.5, 0.05),
        ("topic2", kw / 4, 1..=5, 0.45, 0.3),
    ];
    let mut lines = Vec::with_capacity(config.users);
    for (i, u) in users.iter_mut().enumerate() {
        let mut s = format!(
            "uid {}|age {}|gender {}|marriageStatus {}|education {}|consumptionAbility {}|LBS {}",
            uid_of(i),
            u.age,
            u.gender,
            rng.random_range(1..=15),
            u.education,
            u.consumption,
            u.lbs,
        );
        for (f, (name, vocab, len, purity, missing)) in fields_vocab.iter().cloned().enumerate() {
            // The skew story leaves many fields out, as sparse real profiles do.
            let missing = match story {
                Story::Skew => 0.15 + 2.0 * missing,
                _ => missing,
            };
            if rng.random::<f64>() < missing {
                continue;
            }
            let n = rng.random_range(len);
            s.push('|');
            s.push_str(name);
            for _ in 0..n {
                let t = match story {
                    // Heavy-tailed: a few tokens are very common, most are rare.
                    Story::Tokens if rng.random::<f64>() < 0.5 => zipf(&mut rng, vocab),
                    _ => token(&mut rng, u, vocab, k, purity),
                };
                u.tokens.push((f, t));
                s.push(' ');
                s.push_str(&t.to_string());
            }
        }
        s.push_str(&format!(
            "|ct {}|os {}|carrier {}",
            rng.random_range(0..=4),
            rng.random_range(1..=2),
            rng.random_range(0..=3)
        ));
        if rng.random::<f64>() < 0.4 {
            s.push_str("|house 1");
        }
        lines.push(s);
    }

    // Campaigns.
    struct Camp {
        aid: u64,
        cat: usize,
        bias: f64,
        taste: f64,
        age: u32,
        gender: u32,
        seeds: usize,
        /// Story-specific effects: (field, token) → weight, and demographic effects.
        token_weights: std::collections::HashMap<(usize, usize), f64>,
        demo: [Vec<f64>; 5],
        region: u32,
    }
    let mut camps = Vec::with_capacity(config.campaigns);
    let mut ad_lines = Vec::with_capacity(config.campaigns);
    for j in 0..config.campaigns {
        let cat = if j < k { j } else { pick(&mut rng) };
        let seeds = ((config.median_seeds * (config.seed_spread * normal(&mut rng)).exp())
            as usize)
            .clamp(5, config.max_seeds);
        let aid = 1_000 + 17 * j as u64 + (j as u64 % 3);
        let advertiser = 10 + cat * 5 + rng.random_range(0..3);
        ad_lines.push(format!(
            "{aid},{advertiser},{},{},{},{},{},{}",
            200 + j,
            5_000 + j,
            [22, 35, 42, 59, 79][rng.random_range(0..5)],
            30 + cat * 3,
            if rng.random::<f64>() < 0.3 {
                0
            } else {
                100 + cat * 4 + rng.random_range(0..2)
            },
            [4, 6, 9, 11][cat % 4],
        ));
        let mut token_weights = std::collections::HashMap::new();
        let mut demo: [Vec<f64>; 5] = Default::default();
        match story {
            Story::Taste => {}
            Story::Tokens => {
                // Six triggers: three from the category's shared pool, three of the campaign's own, from
                // the common part of interest1, kw1 and topic1 (so enough users carry them).
                for t in 0..6 {
                    let f = [0, 3, 5][t % 3];
                    let vocab = fields_vocab[f].1;
                    let common = (vocab / 10).max(8);
                    let tok = if t < 3 {
                        (cat * 7919 + t * 104_729) % common + 1
                    } else {
                        rng.random_range(1..=common)
                    };
                    token_weights.insert((f, tok), 1.5 + 1.5 * rng.random::<f64>());
                }
            }
            Story::Skew => {
                let sizes = [5, 2, 7, 2, 8];
                for (d, &n) in demo.iter_mut().zip(&sizes) {
                    *d = (0..=n).map(|_| 0.9 * normal(&mut rng)).collect();
                }
                for _ in 0..30 {
                    let f = [1, 4, 6][rng.random_range(0..3)];
                    let vocab = fields_vocab[f].1;
                    token_weights.insert(
                        (f, rng.random_range(1..=(vocab / 4).max(8))),
                        1.2 * normal(&mut rng),
                    );
                }
            }
        }
        let taste = match story {
            Story::Taste => 2.5 + 1.5 * rng.random::<f64>(),
            Story::Tokens => 0.5 * rng.random::<f64>(),
            Story::Skew => 0.8 * rng.random::<f64>(),
        };
        camps.push(Camp {
            aid,
            cat,
            bias: 0.0,
            taste,
            age: (cat % 5) as u32 + 1,
            gender: (cat % 2) as u32 + 1,
            seeds,
            token_weights,
            demo,
            region: rng.random_range(0..8),
        });
    }
    let logit = |c: &Camp, u: &User| {
        let affinity = if u.primary == c.cat {
            1.0
        } else if u.secondary == c.cat {
            0.5
        } else {
            0.0
        };
        let tokens: f64 = if c.token_weights.is_empty() {
            0.0
        } else {
            let mut seen = HashSet::new();
            u.tokens
                .iter()
                .filter(|t| seen.insert(**t))
                .filter_map(|t| c.token_weights.get(t))
                .sum()
        };
        let demo = if c.demo[0].is_empty() {
            0.6 * f64::from(u.age == c.age) + 0.4 * f64::from(u.gender == c.gender)
        } else {
            let at = |v: &Vec<f64>, i: u32| v[(i as usize).min(v.len() - 1)];
            at(&c.demo[0], u.age)
                + at(&c.demo[1], u.gender)
                + at(&c.demo[2], u.education)
                + at(&c.demo[3], u.consumption)
                + at(&c.demo[4], u.lbs % 8)
        };
        c.bias + c.taste * affinity + demo + tokens
    };
    // Calibrate each campaign's bias so that about 1 in (1 + negatives_per_seed) rows converts.
    let target = 1.0 / (1.0 + config.negatives_per_seed as f64);
    let probe: Vec<usize> = (0..2_000.min(config.users))
        .map(|_| rng.random_range(0..config.users))
        .collect();
    for c in &mut camps {
        let (mut lo, mut hi) = (-15.0, 5.0);
        for _ in 0..40 {
            c.bias = (lo + hi) / 2.0;
            let mean = probe
                .iter()
                .map(|&i| sigmoid(logit(c, &users[i])))
                .sum::<f64>()
                / probe.len() as f64;
            if mean > target {
                hi = c.bias
            } else {
                lo = c.bias
            }
        }
    }

    let mut stage1 = Vec::new();
    let mut stage2 = Vec::new();
    let mut seeds_total = 0;
    for c in &camps {
        let n1 = (c.seeds * (1 + config.negatives_per_seed)).min(config.users * 2 / 3);
        let n2 = ((n1 as f64 * config.stage2_fraction) as usize)
            .min(config.users - n1)
            .max(20);
        let mut taken = HashSet::with_capacity(n1 + n2);
        let mut draw = |rng: &mut StdRng| loop {
            let i = rng.random_range(0..config.users);
            // Skew: 80 % of a campaign's rows come from its own region, so campaigns share few users.
            if story == Story::Skew && users[i].lbs % 8 != c.region && rng.random::<f64>() < 0.8 {
                continue;
            }
            if taken.insert(i) {
                return i;
            }
        };
        for _ in 0..n1 {
            let i = draw(&mut rng);
            let y = rng.random::<f64>() < sigmoid(logit(c, &users[i]));
            seeds_total += usize::from(y);
            stage1.push((c.aid, uid_of(i), y));
        }
        for _ in 0..n2 {
            let i = draw(&mut rng);
            let y = rng.random::<f64>() < sigmoid(logit(c, &users[i]));
            stage2.push((c.aid, uid_of(i), y));
        }
    }
    // Rows of all campaigns interleave in the files, as in the competition data.
    let shuffle = |rows: &mut Vec<(u64, u64, bool)>, rng: &mut StdRng| {
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.random_range(0..=i));
        }
    };
    shuffle(&mut stage1, &mut rng);
    shuffle(&mut stage2, &mut rng);

    std::fs::create_dir_all(out)
        .map_err(|e| DataError::new(out, format!("cannot create folder: {e}")))?;
    write(raw::AD_FILE, &|w| {
        writeln!(
            w,
            "aid,advertiserId,campaignId,creativeId,creativeSize,adCategoryId,productId,productType"
        )?;
        for l in &ad_lines {
            writeln!(w, "{l}")?;
        }
        Ok(())
    })?;
    write(raw::USER_FILE, &|w| {
        for l in &lines {
            writeln!(w, "{l}")?;
        }
        Ok(())
    })?;
    let rows = |w: &mut dyn Write, rows: &[(u64, u64, bool)]| -> std::io::Result<()> {
        for (a, u, y) in rows {
            writeln!(w, "{a},{u},{}", if *y { 1 } else { -1 })?;
        }
        Ok(())
    };
    write(raw::STAGE1_FILE, &|w| {
        writeln!(w, "aid,uid,label")?;
        rows(w, &stage1)
    })?;
    write(raw::STAGE2_FILE, &|w| rows(w, &stage2))?;
    Ok(SynthSummary {
        config: config.clone(),
        users: config.users,
        campaigns: config.campaigns,
        seeds: seeds_total,
        stage1_rows: stage1.len(),
        stage2_rows: stage2.len(),
    })
}
