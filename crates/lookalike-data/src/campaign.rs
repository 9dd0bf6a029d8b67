//! A new campaign's online fine-tuning from files: the general model, a pool (text or Parquet), a seed
//! list and the campaign's ad. One body for every caller that has files: `lookalike finetune` and
//! `expand`, and the Python package (`import lookalike`); the web page runs the same core steps on
//! the pool it holds in memory.

use crate::error::DataError;
use crate::{pool, raw};
use lookalike_core::data::UserTable;
use lookalike_core::expansion::held_out_auc;
use lookalike_core::finetune::{FineTuneConfig, FineTuner, GateWeights, gate_weights};
use lookalike_core::finite::NonFinite;
use lookalike_core::model::MetaHeac;
use lookalike_core::online::{OnlineConfig, OnlineError, PoolSampler, UserRow};
use lookalike_core::record::{CampaignInfo, RecordHeader};
use lookalike_core::schema::Schema;
use lookalike_core::seeds::SeedList;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the campaign's ad features come from.
#[derive(Debug, Clone)]
pub enum Ad {
    /// Those of this aid in the pool folder's `adFeature.csv`.
    LikeAid(String),
    /// `name=value` pairs (fields not named are unknown).
    Pairs(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{seeds}: {error}{hint}")]
    Seeds {
        seeds: String,
        error: OnlineError,
        hint: String,
    },
    #[error(transparent)]
    NonFinite(#[from] NonFinite),
    #[error("{0}")]
    Ad(String),
    #[error("this is a campaign's fine-tuned model; give the general model (`lookalike pretrain`)")]
    NotGeneral,
}

/// What fine-tuning needs besides the general model.
pub struct Request<'a> {
    /// A raw directory or a user file (text or Parquet).
    pub pool: &'a Path,
    pub seeds: &'a SeedList,
    /// Where the seed list came from, for messages.
    pub seeds_name: &'a str,
    pub ad: &'a Ad,
    pub online: OnlineConfig,
    pub finetune: FineTuneConfig,
    pub seed: u64,
}

/// What a caller may show while it runs.
pub enum Progress {
    /// Bytes of the pool read so far.
    Pool(u64),
    /// Fine-tuning starts: at most this many steps.
    Steps(usize),
    /// One step, its mini-batch loss.
    Step(f32),
}

/// The campaign's model and how it was made.
pub struct Tuned {
    /// The general model's header with [`RecordHeader::campaign`] filled in.
    pub header: RecordHeader,
    pub model: MetaHeac,
    /// Users of the pool, and those that are not seeds.
    pub pool_users: usize,
    pub candidates: usize,
    pub duplicates: usize,
    /// Gate weights over the training seeds before and after fine-tuning.
    pub before: GateWeights,
    pub after: GateWeights,
    /// Steps run, and seconds fine-tuning took.
    pub ran: usize,
    pub seconds: f64,
    /// Random non-seeds the held-out seeds were ranked against.
    pub probe_others: usize,
    pub warnings: Vec<String>,
}

/// The ad-field ids of `ad`, with a description of where they came from; unknown values are warned.
fn ad_ids(
    schema: &Schema,
    ad: &Ad,
    pool_path: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Vec<u32>, String), CampaignError> {
    match ad {
        Ad::LikeAid(aid) => {
            let dir = if pool_path.is_dir() {
                pool_path
            } else {
                pool_path.parent().unwrap_or(Path::new("."))
            };
            let path = raw::find(dir, raw::AD_FILE)?;
            let names: Vec<String> = schema.ad.iter().map(|f| f.name.clone()).collect();
            let ads = raw::read_ads(&path, &names)?;
            let ids = crate::prepare::ad_ids(schema, &ads, aid).ok_or_else(|| {
                CampaignError::Ad(format!("{}: aid {aid} is not in this file", path.display()))
            })?;
            Ok((ids, format!("like aid {aid} of {}", path.display())))
        }
        Ad::Pairs(pairs) => {
            let mut ids = vec![0u32; schema.ad.len()];
            for p in pairs {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| CampaignError::Ad(format!("--ad {p:?}: expected name=value")))?;
                let f = schema
                    .ad
                    .iter()
                    .position(|f| f.name == k.trim())
                    .ok_or_else(|| {
                        CampaignError::Ad(format!(
                            "--ad {p:?}: unknown ad field `{k}` (fields: {})",
                            schema
                                .ad
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                ids[f] = schema.ad[f].vocab.id(v.trim());
                if ids[f] == 0 {
                    warnings.push(format!(
                        "--ad {p}: value never seen in training, treated as unknown"
                    ));
                }
            }
            Ok((ids, format!("--ad {}", pairs.join(","))))
        }
    }
}

/// Fine-tunes `general` (on an autodiff device) for the campaign: the seeds and non-seeds sampled
/// from the pool in one streaming pass, the product's online rule, the held-out seeds' AUC.
pub fn tune(
    header: RecordHeader,
    general: MetaHeac,
    req: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<Tuned, CampaignError> {
    if header.campaign.is_some() {
        return Err(CampaignError::NotGeneral);
    }
    let mut header = header;
    let mut warnings = Vec::new();
    let (ad, ad_source) = ad_ids(&header.schema, req.ad, req.pool, &mut warnings)?;
    let user_path: PathBuf = pool::user_file(req.pool)?;

    // Seeds and sampled non-seeds, one pass.
    let mut sampler = PoolSampler::<UserRow>::new(req.seeds, &req.online, req.seed);
    let stats = pool::stream_users(
        &user_path,
        &header.schema,
        &|_| true,
        &mut |b| progress(Progress::Pool(b)),
        &mut |t: UserTable| -> Result<(), DataError> {
            for u in 0..t.len() {
                sampler.offer(t.uids[u], || UserRow::of(&t, u));
            }
            Ok(())
        },
    )?;
    let candidates = sampler.candidates();
    let sampled = sampler.finish().map_err(|error| CampaignError::Seeds {
        seeds: req.seeds_name.to_string(),
        hint: match error {
            OnlineError::TooFew { .. } => " or lower --min-seeds".to_string(),
            _ => format!(" (pool {})", user_path.display()),
        },
        error,
    })?;
    let (listed, duplicates) = (sampled.listed, sampled.duplicates);
    warnings.extend(sampled.warning.clone());
    let (users, plan) = sampled.into_table(UserTable::new(&header.schema), &req.online);

    // Fine-tuning, the product's rule: from the similar campaigns' prior where the record carries it.
    let before = gate_weights(&general, &users, &ad, &plan.gate_rows);
    let general = match header.prior_library(req.finetune.similar) {
        Some(library) => library.fold(general, &users, &plan.rows),
        None => general,
    };
    // The campaign's model has the prior in its weights: its record needs no library.
    header.library = None;
    let mut ft = FineTuner::new(
        general,
        req.finetune.clone(),
        &users,
        &ad,
        &plan.rows,
        req.seed,
    );
    let (wide_c, soup) = (ft.wide_c(), ft.soups());
    progress(Progress::Steps(ft.total_steps()));
    let start = Instant::now();
    while let Some(loss) = ft.step()? {
        progress(Progress::Step(loss));
    }
    // The held-out rows' choice (the refit reruns that many steps on every row).
    let (ran, steps) = (ft.step, ft.best_step().unwrap_or(ft.step));
    let model = ft.into_model()?;
    let seconds = start.elapsed().as_secs_f64();
    let after = gate_weights(&model, &users, &ad, &plan.gate_rows);
    let held_auc = held_out_auc(&model, &users, &ad, &plan)?;
    header.campaign = Some(CampaignInfo {
        ad,
        ad_source,
        seeds_listed: listed,
        seeds_matched: plan.train_seeds.len() + plan.held.len(),
        seeds_trained: plan.train_seeds.len(),
        seeds_held_out: plan.held.len(),
        negatives: plan.negatives.len(),
        held_out_auc: held_auc,
        steps,
        wide_c,
        soup,
        seed: req.seed,
        pool: user_path.display().to_string(),
    });
    Ok(Tuned {
        header,
        model,
        pool_users: stats.lines,
        candidates,
        duplicates,
        before,
        after,
        ran,
        seconds,
        probe_others: plan.probe.len() - plan.held.len(),
        warnings,
    })
}
