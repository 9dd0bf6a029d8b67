//! `lookalike finetune`: the first half of the online stage. Fine-tune the general model on a new
//! campaign's seeds plus non-seeds sampled from the pool (one streaming pass, memory bounded by the
//! users drawn), and write the campaign's model as a record that `lookalike score` ranks a pool with.

use crate::{BackendArg, FineTuneArgs, backend, load_record, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::model::MetaHeac;
use lookalike_core::online::OnlineConfig;
use lookalike_core::record::{self, RecordHeader};
use lookalike_core::seeds::{SeedList, parse_seed_list};
use lookalike_data::campaign::{self, Ad, CampaignError, Progress, Request};
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

fn show(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The campaign's online fine-tuning (`lookalike_data::campaign::tune`), with progress bars and a
/// report.
pub fn tune(c: &Campaign) -> Result<Tuned> {
    if !(0.0..0.9).contains(&c.holdout) {
        bail!("--holdout must be in [0, 0.9)");
    }
    let ad = match (&c.like_aid, &c.ad) {
        (Some(aid), _) => Ad::LikeAid(aid.clone()),
        (None, Some(pairs)) => Ad::Pairs(pairs.clone()),
        (None, None) => {
            bail!("give the campaign's ad features with --like-aid AID or --ad name=value,...")
        }
    };
    let device = backend(c.backend)?;
    let (header, general) = load_record(&c.model, &device)?;
    let seeds = read_seeds(&c.seeds)?;
    // Non-seeds are sampled from the pool here, not exposed users as offline.
    let recipe = c.finetune.recipe(Some(&header.training), true);
    let finetune = c.finetune.config(recipe, true);
    let request = Request {
        pool: &c.pool,
        seeds: &seeds,
        seeds_name: &c.seeds.display().to_string(),
        ad: &ad,
        online: OnlineConfig::new()
            .with_negatives_per_seed(c.negatives_per_seed)
            .with_min_seeds(c.min_seeds)
            .with_holdout(c.holdout),
        finetune,
        seed: c.seed,
    };
    let reading = progress::bytes("reading the pool");
    let mut steps: Option<indicatif::ProgressBar> = None;
    let tuned = campaign::tune(header, general, &request, &mut |p| match p {
        Progress::Pool(b) => reading.set_position(b),
        Progress::Steps(n) => {
            reading.finish_and_clear();
            steps = Some(progress::steps(n as u64, "fine-tune"));
        }
        Progress::Step(loss) => {
            if let Some(bar) = &steps {
                bar.set_prefix(format!("loss {loss:.4}"));
                bar.inc(1);
            }
        }
    })
    .map_err(|e| match e {
        CampaignError::NotGeneral => anyhow::anyhow!("{}: {e}", c.model.display()),
        e => e.into(),
    })?;
    reading.finish_and_clear();
    if let Some(bar) = steps {
        bar.finish_and_clear();
    }
    let info = tuned.header.campaign.as_ref().expect("a tuned campaign");
    println!(
        "seeds: {} ids ({} duplicates dropped), {} in the pool of {} users: match rate {:.1} %",
        info.seeds_listed,
        tuned.duplicates,
        info.seeds_matched,
        tuned.pool_users,
        info.seeds_matched as f64 * 100.0 / info.seeds_listed.max(1) as f64
    );
    for w in &tuned.warnings {
        eprintln!("warning: {w}");
    }
    let (before, after) = (&tuned.before, &tuned.after);
    println!("expert gate before fine-tuning: {}", show(&before.expert));
    println!("expert gate after fine-tuning:  {}", show(&after.expert));
    println!("critic gate before fine-tuning: {}", show(&before.critic));
    println!("critic gate after fine-tuning:  {}", show(&after.critic));
    // Held-out seeds against random candidates: can the model find seeds it never saw?
    if let Some(v) = info.held_out_auc {
        println!(
            "held-out seeds: {} seeds vs {} random candidates, AUC {v:.4}",
            info.seeds_held_out, tuned.probe_others,
        );
    }
    println!(
        "fine-tuned on {} seeds + {} sampled non-seeds in {:.1} s: ran {} steps, kept {}",
        info.seeds_trained, info.negatives, tuned.seconds, tuned.ran, info.steps,
    );
    Ok(Tuned {
        header: tuned.header,
        model: tuned.model,
        seeds,
        candidates: tuned.candidates,
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
