//! `lookalike eval`: the paper's evaluation protocol on the test campaigns.

use crate::{BackendArg, FineTuneArgs, backend, load_prepared, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::data::Role;
use lookalike_core::finetune::{OnlineRecipe, tune_and_score};
use lookalike_core::lr::{LrConfig, OneHot};
use lookalike_core::meta::MetaConfig;
use lookalike_core::metrics::{CampaignMetrics, GroupMetrics, TestCampaigns};
use lookalike_core::model::{Init, MetaHeacConfig};
use lookalike_core::record;
use lookalike_core::schedule::mean_of;
use lookalike_core::stats::paired;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (the one the model was trained on).
    #[arg(long)]
    data: PathBuf,
    /// General-model record (optional with --no-pretrain: then only its config is used).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Fine-tune from a fresh initialisation instead of the general model (the one-stage baseline).
    #[arg(long)]
    no_pretrain: bool,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    /// Fraction of candidates for P@k / R@k.
    #[arg(long, default_value_t = 0.05)]
    top_fraction: f64,
    /// Which campaigns: the test campaigns (the paper's protocol), or the training campaigns that
    /// `pretrain` held out for validation (the same split and rows; needs --model): for choosing
    /// online-stage settings (--wide-folds, --finetune-lr, …) without looking at test campaigns.
    #[arg(long, value_enum, default_value_t = On::Test)]
    on: On,
    #[command(flatten)]
    finetune: FineTuneArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum On {
    Test,
    Validation,
}

#[derive(Serialize)]
struct Report {
    model: Option<String>,
    data: String,
    no_pretrain: bool,
    seed: u64,
    top_fraction: f64,
    seconds: f64,
    groups: Groups,
}

#[derive(Serialize)]
struct Groups {
    cold: GroupMetrics,
    hot: GroupMetrics,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.4}"))
}

pub fn run(a: Args) -> Result<()> {
    if !(a.top_fraction > 0.0 && a.top_fraction <= 1.0) {
        bail!("--top-fraction must be in (0, 1]");
    }
    let data = load_prepared(&a.data)?;
    let device = backend(a.backend)?;
    let train_device = device.clone().autodiff();
    // With --no-pretrain a record contributes only its config: its weights are not decoded.
    let mut training = None;
    let mut library = None;
    let (config, general) = match &a.model {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            // One decode of the header and library (the weights do not depend on the data).
            let (h, model) =
                record::from_bytes_or_fresh(&bytes, a.no_pretrain.then_some(a.seed), &train_device)
                    .with_context(|| format!("{}", path.display()))?;
            if h.schema != data.schema {
                bail!(
                    "{} was trained on other data than {} (their vocabularies differ); evaluate on the prepared file it was trained on",
                    path.display(),
                    a.data.display()
                );
            }
            training = Some(h.training);
            // A fresh model's online stage has no prior.
            library = h.library.filter(|_| !a.no_pretrain);
            (h.model, model)
        }
        None if a.no_pretrain => {
            let config = MetaHeacConfig::for_schema(&data.schema);
            let model = config.init(Init::Seeded(a.seed), &train_device);
            (config, model)
        }
        None => bail!("--model is required (or --no-pretrain)"),
    };
    // A fresh model (--no-pretrain) did not choose a recipe.
    let recipe = a
        .finetune
        .recipe(training.as_ref().filter(|_| !a.no_pretrain), false);
    let ft = a.finetune.config(recipe, false);
    let library = library.filter(|_| ft.similar);
    if let Some(l) = &library {
        eprintln!(
            "online stage from the prior of the model's training campaigns most like each campaign ({} of {}; --similar false: without)",
            l.k_label(),
            l.len()
        );
    }
    if ft.soups(config.wide) {
        eprintln!(
            "online rule: the average of two runs, without the wide fit and with the wide fit alone{}",
            if recipe == OnlineRecipe::Averaged {
                " (online recipe chosen by the model's validation campaigns)"
            } else {
                ""
            }
        );
    } else if recipe != OnlineRecipe::AsConfigured {
        eprintln!(
            "online recipe chosen by the model's validation campaigns: {}",
            recipe.name()
        );
    }
    let start = Instant::now();
    if a.on == On::Validation {
        let info = training.context("--on validation needs --model (a trained record)")?;
        let mut meta = info.meta.with_context(|| {
            format!(
                "{}: the record does not say how it was trained (written by an older version)",
                a.model
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        })?;
        if info.refit.is_some() {
            bail!(
                "the model was refit on its validation campaigns too (pretrain's --val-refit), so they no longer measure it: train with --val-refit false to choose online settings on them"
            );
        }
        // The validation fine-tunes run on this machine's cores, not the training run's.
        meta.threads = a.backend.task_threads(None, MetaConfig::new().threads);
        let train = data.with_role(Role::Train);
        let validation =
            lookalike_core::schedule::held_out(&meta, ft.clone(), &data.users, &train, info.seed);
        if validation.is_empty() {
            bail!("the model was trained without validation campaigns (val_fraction 0)");
        }
        // The record's library holds the validation campaigns too: the prior for each comes from the
        // other training campaigns', as when validation chose it.
        let ours = match &library {
            Some(lib) => validation.aucs_with_library(&general, &ft, lib)?,
            None => validation.aucs(&general)?,
        };
        let onehot = OneHot::new(&config.tables, &config.multi_lens);
        let lr = validation.lr_aucs(&onehot, &LrConfig::default())?;
        println!(
            "validation mean AUC {:.4} over {} held-out training campaigns ({:.1} s): {}",
            mean_of(&ours),
            validation.len(),
            start.elapsed().as_secs_f64(),
            validation.aids().join(", ")
        );
        let (x, y): (Vec<f64>, Vec<f64>) = ours
            .iter()
            .zip(&lr)
            .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
            .unzip();
        let p = paired(&x, &y);
        println!(
            "LR on the same rows {:.4}: the model is ahead by {:+.4}, on {} of {} campaigns (paired t-test p {:.3})",
            mean_of(&lr),
            p.mean_diff,
            p.wins,
            p.n,
            p.p_value
        );
        return Ok(());
    }
    let tests: Vec<_> = data
        .campaigns
        .iter()
        .filter(|c| c.role != Role::Train)
        .collect();
    let bar = progress::steps(tests.len() as u64, "fine-tune + score");
    let mut groups = Vec::new();
    for role in [Role::Cold, Role::Hot] {
        let (mut per, mut labels, mut scores) = (Vec::new(), Vec::new(), Vec::new());
        for (i, c) in data
            .campaigns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role == role)
        {
            bar.set_prefix(c.aid.clone());
            let start = match &library {
                Some(l) => l.fold(general.clone(), &data.users, &c.stage1),
                None => general.clone(),
            };
            let (s, _) = tune_and_score(
                start,
                &ft,
                &data.users,
                &c.ad,
                &c.stage1,
                &c.stage2,
                a.seed ^ i as u64,
            )
            .with_context(|| format!("campaign {}", c.aid))?;
            let l: Vec<bool> = c.stage2.iter().map(|r| r.label).collect();
            per.push(CampaignMetrics::new(
                &c.aid,
                c.seeds(),
                &l,
                &s,
                a.top_fraction,
            )?);
            labels.extend(l);
            scores.extend(s);
            bar.inc(1);
        }
        groups.push(GroupMetrics::new(per, &labels, &scores));
    }
    bar.finish_and_clear();
    let hot = groups.pop().context("hot group")?;
    let cold = groups.pop().context("cold group")?;
    let seconds = start.elapsed().as_secs_f64();
    let pct = a.top_fraction * 100.0;
    println!("| group | campaigns | pooled AUC | mean AUC | P@{pct}% | R@{pct}% |");
    println!("|---|---|---|---|---|---|");
    for (name, g) in [("cold", &cold), ("hot", &hot)] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            g.campaigns,
            fmt(g.pooled_auc),
            fmt(g.mean_auc),
            fmt(g.precision),
            fmt(g.recall)
        );
    }
    println!();
    println!(
        "{}",
        TestCampaigns::line(
            &TestCampaigns::of(&cold.per_campaign, a.top_fraction),
            &TestCampaigns::of(&hot.per_campaign, a.top_fraction),
            a.top_fraction
        )
    );
    eprintln!(
        "evaluated {} test campaigns in {:.1} s",
        tests.len(),
        seconds
    );
    if let Some(path) = &a.json {
        let report = Report {
            model: a.model.as_ref().map(|p| p.display().to_string()),
            data: a.data.display().to_string(),
            no_pretrain: a.no_pretrain,
            seed: a.seed,
            top_fraction: a.top_fraction,
            seconds,
            groups: Groups { cold, hot },
        };
        crate::write_json(path, &report)?;
    }
    Ok(())
}
