//! `lookalike expand`: the online stage for a new campaign.

use crate::{BackendArg, FineTuneArgs, backend, load_record, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::data::Row;
use lookalike_core::finetune::{FineTuner, gate_weights, predict};
use lookalike_core::metrics::{auc, top_k};
use lookalike_core::online::{self, OnlineConfig, OnlineError, match_seeds, uid_index};
use lookalike_core::seeds::parse_seed_list;
use lookalike_data::raw::{self, FieldSpec, Vocabs};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// General-model record.
    #[arg(long)]
    model: PathBuf,
    /// Raw directory whose userFeature.data is the candidate pool (adFeature.csv is read for --like-aid).
    #[arg(long)]
    raw: PathBuf,
    /// Seed list: user ids, one per line or a CSV with a `uid` column.
    #[arg(long)]
    seeds: PathBuf,
    /// Take the new campaign's ad features from this aid of adFeature.csv.
    #[arg(long, conflicts_with = "ad")]
    like_aid: Option<String>,
    /// Or give the ad features directly: name=value pairs, comma-separated (unnamed fields are unknown).
    #[arg(long, value_delimiter = ',')]
    ad: Option<Vec<String>>,
    /// Audience size as a percentage of the candidates (seeds excluded).
    #[arg(long, default_value_t = 5.0, conflicts_with = "top")]
    audience_pct: f64,
    /// Or an exact number of users.
    #[arg(long)]
    top: Option<usize>,
    /// Output CSV (`uid,score`, best first).
    #[arg(long)]
    out: PathBuf,
    /// Sampled non-seeds per seed for fine-tuning (the competition data has about 20).
    #[arg(long, default_value_t = 20)]
    negatives_per_seed: usize,
    /// Refuse seed lists with fewer matched users.
    #[arg(long, default_value_t = 10)]
    min_seeds: usize,
    /// Seeds held out of fine-tuning to measure how well the model finds them (fraction).
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    #[command(flatten)]
    finetune: FineTuneArgs,
}

pub fn run(a: Args) -> Result<()> {
    if !(a.audience_pct > 0.0 && a.audience_pct <= 100.0) {
        bail!("--audience-pct must be in (0, 100]");
    }
    if !(0.0..0.9).contains(&a.holdout) {
        bail!("--holdout must be in [0, 0.9)");
    }
    let start = Instant::now();
    let device = backend(a.backend)?;
    let (header, general) = load_record(&a.model, &device)?;
    let schema = &header.schema;

    // The new campaign's ad features.
    let ad: Vec<u32> = match (&a.like_aid, &a.ad) {
        (Some(aid), _) => {
            let path = raw::find(&a.raw, raw::AD_FILE)?;
            let names: Vec<String> = schema.ad.iter().map(|f| f.name.clone()).collect();
            let ads = raw::read_ads(&path, &names)?;
            lookalike_data::prepare::ad_ids(schema, &ads, aid)
                .with_context(|| format!("{}: aid {aid} is not in this file", path.display()))?
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
            ids
        }
        (None, None) => {
            bail!("give the campaign's ad features with --like-aid AID or --ad name=value,...")
        }
    };

    // The candidate pool, encoded with the record's vocabularies.
    let user_path = raw::find(&a.raw, raw::USER_FILE)?;
    let bar = progress::bytes("reading the pool");
    let pool = raw::read_users(
        &user_path,
        &FieldSpec::of(schema),
        None,
        Vocabs::Apply(schema),
        &|b| bar.set_position(b),
    )?;
    bar.finish_and_clear();
    let users = pool.table;
    eprintln!(
        "pool: {} users from {} ({:.0} lines/s)",
        users.len(),
        user_path.display(),
        pool.stats.lines_per_second()
    );

    // Seeds.
    let bytes =
        std::fs::read(&a.seeds).with_context(|| format!("{}: cannot read", a.seeds.display()))?;
    let list = parse_seed_list(&bytes)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", a.seeds.display(), e.line, e.message))?;
    let found = match_seeds(&list, &uid_index(&users));
    println!(
        "seeds: {} ids ({} duplicates dropped), {} in the pool: match rate {:.1} %",
        found.listed,
        found.duplicates,
        found.matched.len(),
        found.rate() * 100.0
    );
    let config = OnlineConfig::new()
        .with_negatives_per_seed(a.negatives_per_seed)
        .with_min_seeds(a.min_seeds)
        .with_holdout(a.holdout);
    let plan = online::plan(users.len(), &found, &config, a.seed).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} {}",
            a.seeds.display(),
            match e {
                OnlineError::TooFew { .. } => "or lower --min-seeds".to_string(),
                _ => format!("(pool {})", user_path.display()),
            }
        )
    })?;
    if let Some(w) = &plan.warning {
        eprintln!("warning: {w}");
    }
    let candidates = &plan.candidates;

    let before = gate_weights(&general, &users, &ad, &plan.gate_rows);
    let mut finetune = a.finetune.config();
    if a.finetune.wide_negative_offset.is_none() {
        // Non-seeds are sampled from the pool here, not exposed users as offline.
        finetune = finetune.sampled_negatives();
    }
    let ft = FineTuner::new(general, finetune, &users, &ad, &plan.rows, a.seed);
    let bar = progress::steps(ft.total_steps() as u64, "fine-tune");
    let t_ft = Instant::now();
    let tuned = ft.run(&mut |_, _, loss| {
        bar.set_prefix(format!("loss {loss:.4}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let ft_seconds = t_ft.elapsed().as_secs_f64();
    let after = gate_weights(&tuned, &users, &ad, &plan.gate_rows);

    // Held-out seeds against random candidates: can the model find seeds it never saw?
    if !plan.held.is_empty() {
        let s = predict(&tuned, &users, &ad, &plan.probe, 4096);
        if let Some(v) = auc(&plan.probe_labels, &s) {
            println!(
                "held-out seeds: {} seeds vs {} random candidates, AUC {:.4}",
                plan.held.len(),
                plan.probe.len() - plan.held.len(),
                v
            );
        }
    }

    // Score the pool (seeds excluded).
    let bar = progress::steps(candidates.len() as u64, "score");
    let t_score = Instant::now();
    let mut scores = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(65_536) {
        let rows: Vec<Row> = chunk
            .iter()
            .map(|&u| Row {
                user: u,
                label: false,
            })
            .collect();
        let s = predict(&tuned, &users, &ad, &rows, 4096);
        lookalike_core::finite::check(&s, "a candidate's score")?;
        scores.extend(s);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let score_seconds = t_score.elapsed().as_secs_f64();
    let k = match a.top {
        Some(k) => k.min(candidates.len()),
        None => online::audience_size(candidates.len(), a.audience_pct),
    };
    let top = top_k(&scores, k);
    lookalike_data::prepare::write_atomic(&a.out, |w| {
        writeln!(w, "uid,score")?;
        for &i in &top {
            writeln!(w, "{},{:.6}", users.uids[candidates[i] as usize], scores[i])?;
        }
        Ok(())
    })?;
    let show = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("expert gate before fine-tuning: {}", show(&before.expert));
    println!("expert gate after fine-tuning:  {}", show(&after.expert));
    println!("critic gate before fine-tuning: {}", show(&before.critic));
    println!("critic gate after fine-tuning:  {}", show(&after.critic));
    println!(
        "fine-tuned on {} seeds + {} sampled non-seeds in {:.1} s; scored {} candidates in {:.1} s ({:.0} users/s)",
        plan.train_seeds.len(),
        plan.negatives.len(),
        ft_seconds,
        candidates.len(),
        score_seconds,
        candidates.len() as f64 / score_seconds.max(1e-9)
    );
    println!(
        "wrote {}: top {} users ({:.2} % of {} candidates, seeds excluded), score cut-off {:.4}; total {:.1} s",
        a.out.display(),
        k,
        k as f64 * 100.0 / candidates.len() as f64,
        candidates.len(),
        top.last().map_or(0.0, |&i| scores[i]),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
