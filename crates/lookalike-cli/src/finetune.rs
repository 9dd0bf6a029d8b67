//! `lookalike finetune`: the first half of the online stage. Fine-tune the general model on a new
//! campaign's seeds plus non-seeds sampled from the pool (one streaming pass, memory bounded by the
//! users drawn), and write the campaign's model as a record that `lookalike score` ranks a pool with.

use crate::{BackendArg, FineTuneArgs, backend, load_record, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::data::UserTable;
use lookalike_core::expansion::held_out_auc;
use lookalike_core::finetune::{FineTuner, GateWeights, gate_weights};
use lookalike_core::model::MetaHeac;
use lookalike_core::online::{OnlineConfig, OnlineError, OnlinePlan, PoolSampler, UserRow};
use lookalike_core::record::{self, CampaignInfo, RecordHeader};
use lookalike_core::seeds::{SeedList, parse_seed_list};
use lookalike_data::{pool, raw};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A new campaign: the general model, the pool, the seeds and the ad; shared with `expand`.
#[derive(clap::Args)]
pub struct Campaign {
    /// General-model record.
    #[arg(long)]
    pub model: PathBuf,
    /// The candidate pool: a raw directory (its userFeature.data; its adFeature.csv for --like-aid)
    /// or a user file in that layout.
    #[arg(long, alias = "raw")]
    pub pool: PathBuf,
    /// Seed list: user ids, one per line or a CSV with a `uid` column.
    #[arg(long)]
    pub seeds: PathBuf,
    /// Take the new campaign's ad features from this aid of adFeature.csv.
    #[arg(long, conflicts_with = "ad")]
    pub like_aid: Option<String>,
    /// Or give the ad features directly: name=value pairs, comma-separated (unnamed fields are unknown).
    #[arg(long, value_delimiter = ',')]
    pub ad: Option<Vec<String>>,
    /// Sampled non-seeds per seed for fine-tuning (the competition data has about 20).
    #[arg(long, default_value_t = OnlineConfig::new().negatives_per_seed)]
    pub negatives_per_seed: usize,
    /// Refuse seed lists with fewer matched users.
    #[arg(long, default_value_t = OnlineConfig::new().min_seeds)]
    pub min_seeds: usize,
    /// Seeds held out of fine-tuning to measure how well the model finds them (fraction).
    #[arg(long, default_value_t = OnlineConfig::new().holdout)]
    pub holdout: f64,
    #[arg(long, default_value_t = 2021)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub finetune: FineTuneArgs,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    campaign: Campaign,
    /// The campaign's model record to write.
    #[arg(long)]
    out: PathBuf,
}

/// A campaign's fine-tuned model and what went into it.
pub struct Tuned {
    /// The general model's header with the campaign's part filled in.
    pub header: RecordHeader,
    pub model: MetaHeac,
    /// The seed list as read (`score` excludes its ids).
    pub seeds: SeedList,
    /// Pool users that are not seeds.
    pub candidates: usize,
}

pub fn read_seeds(path: &Path) -> Result<SeedList> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse_seed_list(&bytes)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), e.line, e.message))
}

/// The campaign's ad-field ids, from `--like-aid` (the pool folder's adFeature.csv) or `--ad` pairs,
/// with a description of where they came from.
fn ad_ids(c: &Campaign, header: &RecordHeader) -> Result<(Vec<u32>, String)> {
    let schema = &header.schema;
    match (&c.like_aid, &c.ad) {
        (Some(aid), _) => {
            let dir = if c.pool.is_dir() {
                c.pool.as_path()
            } else {
                c.pool.parent().unwrap_or(Path::new("."))
            };
            let path = raw::find(dir, raw::AD_FILE)?;
            let names: Vec<String> = schema.ad.iter().map(|f| f.name.clone()).collect();
            let ads = raw::read_ads(&path, &names)?;
            let ids = lookalike_data::prepare::ad_ids(schema, &ads, aid)
                .with_context(|| format!("{}: aid {aid} is not in this file", path.display()))?;
            Ok((ids, format!("like aid {aid} of {}", path.display())))
        }
        (None, Some(pairs)) => {
            let mut ids = vec![0u32; schema.ad.len()];
            for p in pairs {
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("--ad {p:?}: expected name=value"))?;
                let f = schema
                    .ad
                    .iter()
                    .position(|f| f.name == k.trim())
                    .with_context(|| {
                        format!(
                            "--ad {p:?}: unknown ad field `{k}` (fields: {})",
                            schema
                                .ad
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                ids[f] = schema.ad[f].vocab.id(v.trim());
                if ids[f] == 0 {
                    eprintln!(
                        "warning: --ad {p}: value never seen in training, treated as unknown"
                    );
                }
            }
            Ok((ids, format!("--ad {}", pairs.join(","))))
        }
        (None, None) => {
            bail!("give the campaign's ad features with --like-aid AID or --ad name=value,...")
        }
    }
}

/// Seeds and sampled non-seeds in one pass over the pool: the drawn users and the plan over them.
fn sample(
    c: &Campaign,
    header: &RecordHeader,
    seeds: &SeedList,
    config: &OnlineConfig,
    user_path: &Path,
) -> Result<(UserTable, OnlinePlan, usize)> {
    let mut sampler = PoolSampler::<UserRow>::new(seeds, config, c.seed);
    let bar = progress::bytes("reading the pool");
    let stats = pool::stream_users(
        user_path,
        &header.schema,
        &|_| true,
        &|b| bar.set_position(b),
        &mut |t: UserTable| -> Result<()> {
            for u in 0..t.len() {
                sampler.offer(t.uids[u], || UserRow::of(&t, u));
            }
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let candidates = sampler.candidates();
    let sampled = sampler.finish().map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} {}",
            c.seeds.display(),
            match e {
                OnlineError::TooFew { .. } => "or lower --min-seeds".to_string(),
                _ => format!("(pool {})", user_path.display()),
            }
        )
    })?;
    println!(
        "seeds: {} ids ({} duplicates dropped), {} in the pool of {} users: match rate {:.1} %",
        sampled.listed,
        sampled.duplicates,
        sampled.seeds(),
        stats.lines,
        sampled.seeds() as f64 * 100.0 / sampled.listed.max(1) as f64
    );
    if let Some(w) = &sampled.warning {
        eprintln!("warning: {w}");
    }
    let (users, plan) = sampled.into_table(UserTable::new(&header.schema), config);
    Ok((users, plan, candidates))
}

fn show(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_gates(before: &GateWeights, after: &GateWeights) {
    println!("expert gate before fine-tuning: {}", show(&before.expert));
    println!("expert gate after fine-tuning:  {}", show(&after.expert));
    println!("critic gate before fine-tuning: {}", show(&before.critic));
    println!("critic gate after fine-tuning:  {}", show(&after.critic));
}

/// The campaign's online fine-tuning: draw its rows from the pool, fine-tune, report.
pub fn tune(c: &Campaign) -> Result<Tuned> {
    if !(0.0..0.9).contains(&c.holdout) {
        bail!("--holdout must be in [0, 0.9)");
    }
    let device = backend(c.backend)?;
    let (mut header, general) = load_record(&c.model, &device)?;
    if header.campaign.is_some() {
        bail!(
            "{}: this is a campaign's fine-tuned model; give the general model (`lookalike pretrain`)",
            c.model.display()
        );
    }
    let (ad, ad_source) = ad_ids(c, &header)?;
    let user_path = pool::user_file(&c.pool)?;
    let seeds = read_seeds(&c.seeds)?;
    let config = OnlineConfig::new()
        .with_negatives_per_seed(c.negatives_per_seed)
        .with_min_seeds(c.min_seeds)
        .with_holdout(c.holdout);
    let (users, plan, candidates) = sample(c, &header, &seeds, &config, &user_path)?;

    let before = gate_weights(&general, &users, &ad, &plan.gate_rows);
    let mut finetune = c.finetune.config();
    if c.finetune.wide_negative_offset.is_none() {
        // Non-seeds are sampled from the pool here, not exposed users as offline.
        finetune = finetune.sampled_negatives();
    }
    let mut ft = FineTuner::new(general, finetune, &users, &ad, &plan.rows, c.seed);
    let wide_c = ft.wide_c();
    let bar = progress::steps(ft.total_steps() as u64, "fine-tune");
    let t_ft = Instant::now();
    while let Some(loss) = ft.step()? {
        bar.set_prefix(format!("loss {loss:.4}"));
        bar.inc(1);
    }
    // The held-out rows' choice (the refit reruns that many steps on every row).
    let (ran, steps) = (ft.step, ft.best_step().unwrap_or(ft.step));
    let tuned = ft.into_model()?;
    bar.finish_and_clear();
    let after = gate_weights(&tuned, &users, &ad, &plan.gate_rows);
    print_gates(&before, &after);

    // Held-out seeds against random candidates: can the model find seeds it never saw?
    let held_auc = held_out_auc(&tuned, &users, &ad, &plan)?;
    if let Some(v) = held_auc {
        println!(
            "held-out seeds: {} seeds vs {} random candidates, AUC {v:.4}",
            plan.held.len(),
            plan.probe.len() - plan.held.len(),
        );
    }
    println!(
        "fine-tuned on {} seeds + {} sampled non-seeds in {:.1} s: ran {ran} steps, kept {steps}",
        plan.train_seeds.len(),
        plan.negatives.len(),
        t_ft.elapsed().as_secs_f64(),
    );
    header.campaign = Some(CampaignInfo {
        ad,
        ad_source,
        seeds_listed: seeds.uids.len(),
        seeds_matched: plan.train_seeds.len() + plan.held.len(),
        seeds_trained: plan.train_seeds.len(),
        seeds_held_out: plan.held.len(),
        negatives: plan.negatives.len(),
        held_out_auc: held_auc,
        steps,
        wide_c,
        seed: c.seed,
        pool: user_path.display().to_string(),
    });
    Ok(Tuned {
        header,
        model: tuned,
        seeds,
        candidates,
    })
}

pub fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let tuned = tune(&a.campaign)?;
    let bytes = record::to_bytes(&tuned.model, &tuned.header)?;
    lookalike_data::atomic::write_atomic(&a.out, |w| w.write_all(&bytes))?;
    println!(
        "wrote {} ({:.2} MB), the campaign's model; total {:.1} s",
        a.out.display(),
        bytes.len() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
