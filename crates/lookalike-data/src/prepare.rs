//! `prepare`: raw layout → one prepared binary dataset (schema with vocabularies, users, rows grouped by
//! campaign, the train/test campaign split and the cold/hot grouping) that later commands load fast.

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::raw::{self, AdTable, FieldSpec, FieldsAdded, RowFile, UserStats, Vocabs};
use crate::screen;
use lookalike_core::data::{Campaign, Role, Row, UserTable};
use lookalike_core::schema::{Field, Schema, Vocabulary, sort_ids};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// Which positives decide whether a test campaign is cold (≤ T seeds) or hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColdCount {
    /// Stage-1 seeds only: what is known when a campaign starts.
    Stage1,
    /// Positives of stage 1 and stage 2, as the reference code counts (it leaks stage-2 labels).
    BothStages,
}

/// Which user fields `prepare` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserFields {
    /// The listed fields, then every other field the user file holds (id-like ones aside), each
    /// multi-valued field kept long enough for its users' values up to `max_tokens`: the data's
    /// information is read whole, as a per-campaign regression on "every token of every user field"
    /// reads it.
    #[default]
    All,
    /// The listed fields only, at their listed lengths (the reference code's behaviour).
    Listed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareConfig {
    /// The listed fields (the reference's by default); see `user_fields`.
    pub fields: FieldSpec,
    /// Files prepared before this setting existed read the listed fields only.
    #[serde(default = "listed")]
    pub user_fields: UserFields,
    /// The most values kept of one multi-valued field of one user under [`UserFields::All`] (at most
    /// 255); the first ones in file order, as the reference keeps.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Fraction of campaigns used for meta-training (reference code 0.5; the paper says 0.6).
    pub train_fraction: f64,
    /// T: test campaigns with ≤ T seeds are cold, the others hot (reference code 2000).
    pub cold_threshold: usize,
    pub cold_count: ColdCount,
    pub seed: u64,
    /// Cross-fitting over campaigns: the test campaigns are this fold of the seeded order, the
    /// others train, instead of [`Self::train_fraction`]'s split. The folds of one seed cover every
    /// campaign once, so their bench runs together test each campaign once (files prepared before
    /// this setting existed have none).
    #[serde(default)]
    pub fold: Option<Fold>,
}

/// Fold `k` of `n` (0-based): the campaigns at positions ⌊k·N/n⌋ .. ⌊(k+1)·N/n⌋ of the seeded
/// order of N campaigns. Fold 1 of 2 is the default split's test half (train fraction 0.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    pub k: usize,
    pub n: usize,
}

impl Fold {
    /// The positions of the seeded order that this fold tests, out of `campaigns`.
    pub fn range(self, campaigns: usize) -> std::ops::Range<usize> {
        self.k * campaigns / self.n..(self.k + 1) * campaigns / self.n
    }
}

fn listed() -> UserFields {
    UserFields::Listed
}

fn default_max_tokens() -> usize {
    64
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            fields: FieldSpec::default(),
            user_fields: UserFields::All,
            max_tokens: default_max_tokens(),
            train_fraction: 0.5,
            cold_threshold: 2000,
            cold_count: ColdCount::Stage1,
            seed: 2021,
            fold: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareInfo {
    pub config: PrepareConfig,
    pub source: String,
    pub users: UserStats,
    /// Row users absent from the user file (their features are all unknown, as the reference's left join).
    pub missing_users: usize,
    pub stage1_rows: usize,
    pub stage2_rows: usize,
    /// What reading every field added to the listed ones (`None` under [`UserFields::Listed`]).
    #[serde(default)]
    pub fields_added: Option<FieldsAdded>,
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub schema: Schema,
    pub users: UserTable,
    pub campaigns: Vec<Campaign>,
    pub info: PrepareInfo,
}

impl Prepared {
    pub fn with_role(&self, role: Role) -> Vec<&Campaign> {
        self.campaigns.iter().filter(|c| c.role == role).collect()
    }
}

fn check_spec(spec: &FieldSpec) -> std::result::Result<(), String> {
    let mut names = HashSet::new();
    for n in spec
        .user_single
        .iter()
        .chain(spec.user_multi.iter().map(|(n, _)| n))
    {
        if n == "uid" || !names.insert(n.as_str()) {
            return Err(format!("user field `{n}` is listed twice or is `uid`"));
        }
    }
    for (n, len) in &spec.user_multi {
        if !(1..=255).contains(len) {
            return Err(format!("max length of `{n}` must be 1..=255, got {len}"));
        }
    }
    if spec.user_single.is_empty() && spec.user_multi.is_empty() {
        return Err("no user fields".into());
    }
    Ok(())
}

/// Reads a raw directory and builds the prepared dataset.
pub fn prepare(
    dir: &Path,
    config: &PrepareConfig,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<Prepared> {
    check_spec(&config.fields).map_err(|m| DataError::new(dir, m))?;
    if !(1..=255).contains(&config.max_tokens) {
        return Err(DataError::new(
            dir,
            format!("max tokens must be 1..=255, got {}", config.max_tokens),
        ));
    }
    if !(config.train_fraction > 0.0 && config.train_fraction < 1.0) {
        return Err(DataError::new(
            dir,
            format!(
                "train fraction must be in (0, 1), got {}",
                config.train_fraction
            ),
        ));
    }
    if let Some(f) = config.fold
        && !(f.n >= 2 && f.k < f.n)
    {
        return Err(DataError::new(
            dir,
            format!(
                "fold {} of {}: need at least 2 folds and a fold from 0 to folds - 1",
                f.k, f.n
            ),
        ));
    }
    let ads = raw::read_ads(&raw::find(dir, raw::AD_FILE)?, &config.fields.ad)?;
    progress("stage-1 rows", 0);
    let s1 = raw::read_rows(&raw::find(dir, raw::STAGE1_FILE)?, true, &ads)?;
    progress("stage-2 rows", 0);
    let s2 = raw::read_rows(&raw::find(dir, raw::STAGE2_FILE)?, false, &ads)?;
    let needed: HashSet<u64> = s1.rows.iter().chain(&s2.rows).map(|r| r.1).collect();
    let user_path = raw::find(dir, raw::USER_FILE)?;
    let (mut fields, mut fields_added) = match config.user_fields {
        UserFields::Listed => (config.fields.clone(), None),
        UserFields::All => {
            let listed = config.fields.user_names();
            let seen = raw::survey_users(&user_path, &listed, &|u| needed.contains(&u), &|b| {
                progress("surveying user fields", b)
            })?;
            let (spec, added) = config.fields.with_every_field(&seen, config.max_tokens);
            (spec, Some(added))
        }
    };
    let users = raw::read_users(&user_path, &fields, Some(&needed), Vocabs::Build, &|b| {
        progress("users", b)
    })?;
    let mut table = users.table;
    let mut index: HashMap<u64, u32> = table
        .uids
        .iter()
        .enumerate()
        .map(|(i, &u)| (u, i as u32))
        .collect();
    // Row users missing from the user file get all-unknown features (the reference's left join).
    let mut missing = 0;
    let zero_single = vec![0u32; table.single_fields];
    let zero_multi = vec![0u32; table.multi_width];
    let zero_lens = vec![0u8; table.multi_fields];
    for &(_, uid, _) in s1.rows.iter().chain(&s2.rows) {
        if let std::collections::hash_map::Entry::Vacant(e) = index.entry(uid) {
            e.insert(table.len() as u32);
            table.push(uid, &zero_single, &zero_multi, &zero_lens);
            missing += 1;
        }
    }
    if missing == table.len() {
        return Err(DataError::new(
            &user_path,
            "none of the users of train.csv / test1_truth.csv is in this file",
        ));
    }

    // Campaigns: every aid with rows, in sorted order.
    let mut aids: Vec<String> = s1
        .aids
        .iter()
        .chain(&s2.aids)
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    sort_ids(&mut aids);
    let pos: HashMap<&str, usize> = aids
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    let ad_vocab: Vec<Vocabulary> = (0..config.fields.ad.len())
        .map(|f| {
            Vocabulary::from_tokens(
                aids.iter()
                    .map(|a| ads.ads[a][f].clone())
                    .filter(|v| !v.is_empty()),
            )
        })
        .collect();
    let mut campaigns: Vec<Campaign> = aids
        .iter()
        .map(|a| Campaign {
            aid: a.clone(),
            ad: ads.ads[a]
                .iter()
                .zip(&ad_vocab)
                .map(|(v, voc)| voc.id(v))
                .collect(),
            role: Role::Train,
            stage1: Vec::new(),
            stage2: Vec::new(),
        })
        .collect();
    let fill = |rows: &RowFile, stage2: bool, campaigns: &mut Vec<Campaign>| {
        for &(a, uid, label) in &rows.rows {
            let c = &mut campaigns[pos[rows.aids[a as usize].as_str()]];
            let row = Row {
                user: index[&uid],
                label,
            };
            if stage2 {
                c.stage2.push(row)
            } else {
                c.stage1.push(row)
            }
        }
    };
    fill(&s1, false, &mut campaigns);
    fill(&s2, true, &mut campaigns);
    split(&mut campaigns, config);
    let (mut single_vocab, mut multi_vocab) = (users.single_vocab, users.multi_vocab);
    if let Some(added) = &mut fields_added {
        let train: Vec<&Campaign> = campaigns.iter().filter(|c| c.role == Role::Train).collect();
        let (single, multi) = screen_added(&table, &fields, added, &train);
        let lens: Vec<usize> = fields.user_multi.iter().map(|(_, l)| *l).collect();
        table = screen::keep_columns(&table, &single, &multi, &lens);
        single_vocab = screen::masked(single_vocab, &single);
        multi_vocab = screen::masked(multi_vocab, &multi);
        fields.user_single = screen::masked(fields.user_single, &single);
        fields.user_multi = screen::masked(fields.user_multi, &multi);
    }

    let schema = Schema {
        user_single: fields
            .user_single
            .iter()
            .zip(single_vocab)
            .map(|(n, vocab)| Field {
                name: n.clone(),
                max_len: 1,
                vocab,
            })
            .collect(),
        user_multi: fields
            .user_multi
            .iter()
            .zip(multi_vocab)
            .map(|((n, len), vocab)| Field {
                name: n.clone(),
                max_len: *len,
                vocab,
            })
            .collect(),
        ad: config
            .fields
            .ad
            .iter()
            .zip(ad_vocab)
            .map(|(n, vocab)| Field {
                name: n.clone(),
                max_len: 1,
                vocab,
            })
            .collect(),
    };
    Ok(Prepared {
        schema,
        users: table,
        campaigns,
        info: PrepareInfo {
            config: config.clone(),
            source: dir.display().to_string(),
            users: users.stats,
            missing_users: missing,
            stage1_rows: s1.rows.len(),
            stage2_rows: s2.rows.len(),
            fields_added,
        },
    })
}

/// Scores each field `added` holds beyond the list on the training campaigns ([`screen::field_z`]),
/// leaves out those unrelated to their labels (moving them to `added.unrelated`), and says which
/// single- and multi-valued columns of `spec` stay.
fn screen_added(
    table: &UserTable,
    spec: &FieldSpec,
    added: &mut FieldsAdded,
    train: &[&Campaign],
) -> (Vec<bool>, Vec<bool>) {
    let mut keep_single = vec![true; spec.user_single.len()];
    let mut keep_multi = vec![true; spec.user_multi.len()];
    let offsets = spec.multi_offsets();
    let mut score = |name: &str, col: screen::Column, keep: &mut bool| {
        let z = screen::field_z(table, col, train);
        added.scores.push((name.to_string(), z));
        if z <= screen::KEEP_Z {
            *keep = false;
            added.unrelated.push(name.to_string());
        }
    };
    for (i, name) in spec.user_single.iter().enumerate() {
        if added.single.contains(name) {
            score(name, screen::Column::Single(i), &mut keep_single[i]);
        }
    }
    for (i, (name, _)) in spec.user_multi.iter().enumerate() {
        if added.multi.iter().any(|(n, _)| n == name) {
            let col = screen::Column::Multi {
                field: i,
                offset: offsets[i],
            };
            score(name, col, &mut keep_multi[i]);
        }
    }
    added.single.retain(|n| !added.unrelated.contains(n));
    added.multi.retain(|(n, _)| !added.unrelated.contains(n));
    (keep_single, keep_multi)
}

/// Seeded campaign split (the first part of the order trains, or every position outside the
/// fold), then cold/hot by seed count.
pub fn split(campaigns: &mut [Campaign], config: &PrepareConfig) {
    let n = campaigns.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(config.seed));
    let test = match config.fold {
        Some(f) => f.range(n),
        None => {
            let mut n_train = (n as f64 * config.train_fraction).floor() as usize;
            if n >= 2 {
                n_train = n_train.clamp(1, n - 1);
            }
            n_train..n
        }
    };
    for (k, &i) in order.iter().enumerate() {
        let c = &mut campaigns[i];
        c.role = if !test.contains(&k) {
            Role::Train
        } else {
            let seeds = match config.cold_count {
                ColdCount::Stage1 => c.seeds(),
                ColdCount::BothStages => c.seeds() + c.stage2.iter().filter(|r| r.label).count(),
            };
            if seeds <= config.cold_threshold {
                Role::Cold
            } else {
                Role::Hot
            }
        };
    }
}

// ---- prepared binary file ----------------------------------------------------------------------------

const MAGIC: &[u8; 8] = b"LKDATA\0\0";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct FileHeader {
    schema: Schema,
    info: PrepareInfo,
    users: usize,
    campaigns: Vec<CampaignHeader>,
}

#[derive(Serialize, Deserialize)]
struct CampaignHeader {
    aid: String,
    ad: Vec<u32>,
    role: Role,
    stage1: usize,
    stage2: usize,
}

fn encode_rows(rows: &[Row]) -> Vec<u32> {
    rows.iter()
        .map(|r| (r.user << 1) | u32::from(r.label))
        .collect()
}

fn decode_rows(v: &[u32]) -> Vec<Row> {
    v.iter()
        .map(|&x| Row {
            user: x >> 1,
            label: x & 1 == 1,
        })
        .collect()
}

impl Prepared {
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = FileHeader {
            schema: self.schema.clone(),
            info: self.info.clone(),
            users: self.users.len(),
            campaigns: self
                .campaigns
                .iter()
                .map(|c| CampaignHeader {
                    aid: c.aid.clone(),
                    ad: c.ad.clone(),
                    role: c.role,
                    stage1: c.stage1.len(),
                    stage2: c.stage2.len(),
                })
                .collect(),
        };
        let json = serde_json::to_vec(&header).map_err(|e| DataError::new(path, e.to_string()))?;
        write_atomic(path, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&VERSION.to_le_bytes())?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            w.write_all(bytemuck::cast_slice(&self.users.uids))?;
            w.write_all(bytemuck::cast_slice(&self.users.single))?;
            w.write_all(bytemuck::cast_slice(&self.users.multi))?;
            w.write_all(&self.users.lens)?;
            for c in &self.campaigns {
                w.write_all(bytemuck::cast_slice(&encode_rows(&c.stage1)))?;
                w.write_all(bytemuck::cast_slice(&encode_rows(&c.stage2)))?;
            }
            Ok(())
        })
    }

    pub fn load(path: &Path) -> Result<Prepared> {
        let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let bad = |what: &str| {
            DataError::new(path, format!("not a prepared dataset, or damaged ({what})"))
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| bad("too short"))?;
        if &magic != MAGIC {
            return Err(bad("bad magic bytes; make one with `lookalike prepare`"));
        }
        let mut b4 = [0u8; 4];
        r.read_exact(&mut b4).map_err(|_| bad("truncated"))?;
        if u32::from_le_bytes(b4) != VERSION {
            return Err(DataError::new(
                path,
                format!(
                    "prepared format version {} is not supported; run `lookalike prepare` again",
                    u32::from_le_bytes(b4)
                ),
            ));
        }
        let mut b8 = [0u8; 8];
        r.read_exact(&mut b8).map_err(|_| bad("truncated"))?;
        let n = u64::from_le_bytes(b8) as usize;
        if n > 1 << 32 {
            return Err(bad("header length"));
        }
        let mut json = vec![0u8; n];
        r.read_exact(&mut json)
            .map_err(|_| bad("truncated header"))?;
        let mut h: FileHeader =
            serde_json::from_slice(&json).map_err(|e| bad(&format!("header: {e}")))?;
        h.schema.rebuild_indices();
        fn read_vec<T: bytemuck::Pod + Default + Clone>(
            r: &mut impl Read,
            n: usize,
        ) -> std::io::Result<Vec<T>> {
            let mut v = vec![T::default(); n];
            r.read_exact(bytemuck::cast_slice_mut(&mut v))?;
            Ok(v)
        }
        let mut users = UserTable::new(&h.schema);
        let trunc = |_| bad("truncated data");
        users.uids = read_vec(&mut r, h.users).map_err(trunc)?;
        users.single = read_vec(&mut r, h.users * users.single_fields).map_err(trunc)?;
        users.multi = read_vec(&mut r, h.users * users.multi_width).map_err(trunc)?;
        users.lens = read_vec(&mut r, h.users * users.multi_fields).map_err(trunc)?;
        let mut campaigns = Vec::with_capacity(h.campaigns.len());
        for c in h.campaigns {
            let s1: Vec<u32> = read_vec(&mut r, c.stage1).map_err(trunc)?;
            let s2: Vec<u32> = read_vec(&mut r, c.stage2).map_err(trunc)?;
            let (stage1, stage2) = (decode_rows(&s1), decode_rows(&s2));
            if stage1
                .iter()
                .chain(&stage2)
                .any(|r| r.user as usize >= h.users)
            {
                return Err(bad("row points past the user table"));
            }
            campaigns.push(Campaign {
                aid: c.aid,
                ad: c.ad,
                role: c.role,
                stage1,
                stage2,
            });
        }
        Ok(Prepared {
            schema: h.schema,
            users,
            campaigns,
            info: h.info,
        })
    }
}

/// A campaign's ad-field ids under a schema's vocabularies (unseen values → 0); `None` for an unknown aid.
pub fn ad_ids(schema: &Schema, ads: &AdTable, aid: &str) -> Option<Vec<u32>> {
    ads.ads.get(aid).map(|vals| {
        vals.iter()
            .zip(&schema.ad)
            .map(|(v, f)| f.vocab.id(v))
            .collect()
    })
}
