//! `lookalike bench`: the paper's Tables 2 and 4 in one command. Every method on the same test
//! campaigns, the same fine-tuning rows (stage 1) and the same candidates (stage 2), over several seeds;
//! per group the mean ± std over seeds of mean campaign AUC, P@k and R@k, and a per-campaign paired
//! comparison of each method with MetaHeac (mean difference, campaigns won, paired t-test).

use crate::charts;
use crate::{BackendArg, Protocol, backend, load_prepared, progress};
use anyhow::{Result, bail};
use lookalike_core::baselines::{self, General, Method, Task};
use lookalike_core::data::Role;
use lookalike_core::data::{Row, UserTable};
use lookalike_core::finetune::{FineTuneConfig, OnlineRecipe, TracePoint, trace};
use lookalike_core::lr::{LrConfig, OneHot};
use lookalike_core::meta::{MetaConfig, SimilarRule};
use lookalike_core::metrics::{CampaignMetrics, GroupMetrics, TestCampaigns};
use lookalike_core::model::Init;
use lookalike_core::schedule::{self, ExpertsChoice, Progress};
use lookalike_core::stats::{Paired, mean_std, paired};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (`lookalike prepare`).
    #[arg(long)]
    data: PathBuf,
    /// Methods, comma-separated, by paper name or id (lr, mlp, mlp-emb, pinterest, hubble, mlp-pre,
    /// shared-bottom, mmoe, metaheac, wo-hc, wo-he, wo-meta; and, only when named, metaheac-dense:
    /// MetaHeac with dense Adam on the embedding tables, metaheac-half: MetaHeac whose offline
    /// validation scores one half of each validation campaign, metaheac-fixed: MetaHeac
    /// fine-tuned with the online rule as configured, not the recipe its validation campaigns
    /// chose, wo-wide: MetaHeac without the wide part, metaheac-ens: the log-odds of MetaHeac's
    /// eight-expert and one-expert models averaged, metaheac-blend: the log-odds of its two online
    /// runs (Adam without the wide fit, the wide fit alone) averaged, metaheac-soup: their weights
    /// averaged on every campaign, metaheac-single: the best single-run recipe its validation
    /// tried, where it chose the average, metaheac-margin: the average unless another recipe
    /// leads it on validation by more than the experts choice's margin, lr-similar: LR over a
    /// prior from the training campaigns whose LR ranks the campaign's seeds best, and
    /// metaheac-similar: MetaHeac with that prior in its wide part before fine-tuning on every
    /// campaign, whatever its validation campaigns chose, wo-similar: MetaHeac without it on
    /// every campaign, and metaheac-recipe-prior: metaheac-similar with the recipe its validation
    /// campaigns choose with that prior, on a fresh split of them) [default: all but those
    /// thirteen].
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Number of seeds (general models and fine-tuning are redone for each).
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// The first seed; the others follow it.
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Schedules and hyper-parameters: the product's defaults, or the official code's.
    #[arg(long, value_enum, default_value_t = Protocol::Product)]
    protocol: Protocol,
    /// Let MetaHeac's validation campaigns choose between its experts and one, as `pretrain` does
    /// (false: MetaHeac keeps its experts, to compare with the choice) [default: true; reference: false].
    #[arg(long)]
    select_experts: Option<bool>,
    /// Whether MetaHeac's online stage starts from the similar campaigns' prior: as its validation
    /// campaigns choose, always (as `pretrain` does by default), or never [default: always;
    /// reference: never].
    #[arg(long, value_enum)]
    similar: Option<crate::pretrain::SimilarArg>,
    /// Every general model's validation campaigns keep the default online recipe (the average of two
    /// runs) unless another leads it by more than this many standard errors, as `pretrain
    /// --online-margin` [default: as `pretrain`].
    #[arg(long, value_parser = crate::standard_errors)]
    online_margin: Option<f64>,
    /// Where MetaHeac takes that prior, fine-tune it with the recipe its validation campaigns choose
    /// with the prior folded in, as `pretrain --online-with-prior` [default: as `pretrain`].
    #[arg(long)]
    online_with_prior: Option<bool>,
    /// Once validation has chosen, meta-train every general model again on all training campaigns,
    /// the validation ones included, as `pretrain --val-refit` does [default: as `pretrain`].
    #[arg(long)]
    val_refit: Option<bool>,
    /// How every general model's meta-batches draw their campaigns (as `pretrain --task-sampling`)
    /// [default: as `pretrain`].
    #[arg(long, value_enum)]
    task_sampling: Option<crate::pretrain::SamplingArg>,
    /// Cap on pre-training iterations per general model (for quick runs).
    #[arg(long)]
    max_iterations: Option<usize>,
    /// Fraction of candidates for P@k / R@k.
    #[arg(long, default_value_t = 0.05)]
    top_fraction: f64,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw SVG charts in this folder: AUC per method with error bars (auc-by-method.svg), AUC
    /// against seed-set size (auc-by-seeds.svg), and fine-tuning loss and AUC curves on one cold
    /// campaign for MLP one-stage, MMoE, Hubble and MetaHeac (finetune-loss.svg, finetune-auc.svg).
    #[arg(long)]
    svg: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    /// Write each test campaign's LR features (the one-hot user tokens) as svmlight files
    /// `AID.train.svm` / `AID.test.svm` in this folder, for an outside check of the LR fit
    /// (scripts/check-lr-sklearn.py).
    #[arg(long)]
    dump_lr: Option<PathBuf>,
}

/// One campaign's rows as svmlight lines: `label col:1 col:1 …` (0-based columns).
fn svmlight(onehot: &OneHot, users: &UserTable, rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push(if r.label { '1' } else { '0' });
        for c in onehot.columns(users, r.user as usize) {
            out.push_str(&format!(" {c}:1"));
        }
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct Stat {
    mean: Option<f64>,
    std: Option<f64>,
    per_seed: Vec<Option<f64>>,
}

impl Stat {
    fn of(per_seed: Vec<Option<f64>>) -> Stat {
        let v: Vec<f64> = per_seed.iter().flatten().copied().collect();
        let (m, s) = mean_std(&v);
        Stat {
            mean: (!v.is_empty()).then_some(m),
            std: (!v.is_empty()).then_some(s),
            per_seed,
        }
    }
}

#[derive(Serialize)]
struct GroupResult {
    mean_auc: Stat,
    precision: Stat,
    recall: Stat,
    /// Campaigns in the means (with positives and negatives among the candidates).
    campaigns: usize,
    /// Per campaign, the method against MetaHeac on AUC averaged over seeds (absent for MetaHeac).
    vs_metaheac: Option<Paired>,
    /// The same on P@k averaged over seeds.
    vs_metaheac_precision: Option<Paired>,
    /// Per campaign (in data order): aid, seeds, AUC and P@k averaged over seeds.
    per_campaign: Vec<(String, usize, Option<f64>, Option<f64>)>,
}

/// One number of a campaign's metrics (AUC, P@k).
type Metric = fn(&CampaignMetrics) -> Option<f64>;

#[derive(Serialize)]
struct MethodResult {
    cold: GroupResult,
    hot: GroupResult,
}

#[derive(Serialize)]
struct PretrainResult {
    seed: u64,
    iterations: usize,
    best_iteration: usize,
    best_validation_auc: Option<f64>,
    seconds: f64,
    /// The online recipe its validation campaigns chose, where it chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<lookalike_core::schedule::OnlineChoice>,
    /// MetaHeac's: the number of experts its validation campaigns chose, where they chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    experts: Option<ExpertsChoice>,
    /// MetaHeac's: whether its validation campaigns chose the similar campaigns' prior.
    #[serde(skip_serializing_if = "Option::is_none")]
    similar: Option<lookalike_core::schedule::SimilarChoice>,
    /// MetaHeac's: the online recipe its validation campaigns chose with the similar campaigns' prior
    /// folded in, on a fresh split (`metaheac-recipe-prior`).
    #[serde(skip_serializing_if = "Option::is_none")]
    online_with_prior: Option<lookalike_core::schedule::OnlineChoice>,
}

#[derive(Serialize)]
struct Report {
    data: String,
    protocol: Protocol,
    seeds: Vec<u64>,
    top_fraction: f64,
    seconds: f64,
    methods: BTreeMap<String, MethodResult>,
    pretrain: BTreeMap<String, Vec<PretrainResult>>,
    /// What the test campaigns in the means hold, per group.
    test_campaigns: BTreeMap<&'static str, TestCampaigns>,
}

fn parse_methods(list: &Option<Vec<String>>) -> Result<Vec<Method>> {
    let Some(list) = list else {
        return Ok(Method::ALL.to_vec());
    };
    let mut out = Vec::new();
    for s in list {
        match Method::parse(s) {
            Some(m) if !out.contains(&m) => out.push(m),
            Some(_) => {}
            None => bail!(
                "--methods: unknown method {s:?}; known: {}",
                Method::ALL
                    .iter()
                    .chain(&Method::EXTRA)
                    .map(|m| m.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    out.sort();
    Ok(out)
}

pub fn run(a: Args) -> Result<()> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if !(a.top_fraction > 0.0 && a.top_fraction <= 1.0) {
        bail!("--top-fraction must be in (0, 1]");
    }
    let methods = parse_methods(&a.methods)?;
    let data = load_prepared(&a.data)?;
    let device = backend(a.backend)?.autodiff();
    let (base_model, mut base_meta, finetune) = a.protocol.configs(&data.schema);
    base_meta.threads = a.backend.task_threads(None, base_meta.threads);
    base_meta.select_experts = a.select_experts.unwrap_or(base_meta.select_experts);
    if let Some(r) = a.similar {
        base_meta.similar = r.into();
    }
    base_meta.val_refit = a.val_refit.unwrap_or(base_meta.val_refit);
    base_meta.online_with_prior = a.online_with_prior.unwrap_or(base_meta.online_with_prior);
    base_meta.online_margin = a.online_margin.unwrap_or(base_meta.online_margin);
    if let Some(v) = a.task_sampling {
        base_meta.task_sampling = v.into();
    }
    let lr_config = LrConfig::default();
    let train: Vec<_> = data.with_role(Role::Train);
    let tests: Vec<_> = data
        .campaigns
        .iter()
        .filter(|c| c.role != Role::Train)
        .collect();
    if train.is_empty() || tests.is_empty() {
        bail!("{}: needs training and test campaigns", a.data.display());
    }
    // MetaHeac as shipped lets its validation campaigns choose between its experts and one
    // (`MetaConfig::select_experts`): the one-expert general model is "w/o HE"'s, trained once for both.
    let select_experts = base_meta.select_experts
        && base_model.num_experts > 1
        && methods
            .iter()
            .any(|m| m.general() == Some(General::MetaHeac));
    // ... and whether it starts from the similar campaigns' prior (`MetaConfig::similar`).
    let select_similar = base_meta.similar != SimilarRule::Never
        && base_model.wide
        && methods.contains(&Method::MetaHeac);
    let ensemble = methods.contains(&Method::MetaHeacEnsemble);
    if ensemble && !select_experts {
        bail!(
            "--methods metaheac-ens averages the two general models of the experts choice, which this \
             run does not make (--select-experts false, --protocol reference or one expert)"
        );
    }
    let generals: Vec<General> = {
        let mut g: Vec<General> = methods.iter().filter_map(|m| m.general()).collect();
        if select_experts {
            g.push(General::WoHe);
        }
        g.sort();
        g.dedup();
        g
    };
    // The training campaigns' LR fits, for the methods that take the similar campaigns' prior
    // (deterministic: made once).
    let library = (select_similar || methods.iter().any(|m| m.needs_library())).then(|| {
        let onehot = OneHot::new(&base_model.tables, &base_model.multi_lens);
        let lib = lookalike_core::similar::Library::fit(&onehot, &data.users, &train, &lr_config);
        let by_k: Vec<String> = lib
            .scores
            .iter()
            .map(|(k, a)| format!("{}: {a:.4}", lookalike_core::similar::k_name(*k)))
            .collect();
        eprintln!(
            "similar campaigns: {} training campaigns' LR fits; k = {} (held-out AUC by k: {})",
            lib.len(),
            lookalike_core::similar::k_name(lib.k),
            by_k.join(", ")
        );
        lib
    });
    if let Some(dir) = &a.dump_lr {
        std::fs::create_dir_all(dir)?;
        let onehot = OneHot::new(&base_model.tables, &base_model.multi_lens);
        for c in &tests {
            for (part, rows) in [("train", &c.stage1), ("test", &c.stage2)] {
                let body = svmlight(&onehot, &data.users, rows);
                let path = dir.join(format!("{}.{part}.svm", c.aid));
                lookalike_data::atomic::write_atomic(&path, |w| w.write_all(body.as_bytes()))?;
            }
        }
        eprintln!(
            "wrote LR features of {} campaigns ({} columns) to {}",
            tests.len(),
            onehot.dim,
            dir.display()
        );
    }
    let seeds: Vec<u64> = (0..a.seeds as u64).map(|i| a.seed + i).collect();
    let start = Instant::now();
    // results[method][seed][campaign]
    let mut results: BTreeMap<Method, Vec<Vec<CampaignMetrics>>> = BTreeMap::new();
    let mut pretrain: BTreeMap<String, Vec<PretrainResult>> = BTreeMap::new();
    let mut traces: Option<Traces> = None;
    eprintln!(
        "bench: {} methods × {} seeds on {} test campaigns ({} general models per seed), protocol {:?}",
        methods.len(),
        seeds.len(),
        tests.len(),
        generals.len(),
        a.protocol
    );
    for &seed in &seeds {
        let mut models = BTreeMap::new();
        // The online recipe each general model's validation chose (the configuration as given where
        // it chose none).
        let mut recipes = BTreeMap::new();
        let mut reports = BTreeMap::new();
        let mut validations = BTreeMap::new();
        // The configured (eight-expert) model and its recipe, whichever the experts choice keeps
        // (for the ensemble only).
        let mut eight = None;
        for &g in &generals {
            let (mc, mut meta) = g.configure(&base_model, &base_meta);
            // Its validation chooses an online recipe when a method that starts from it uses one (or,
            // for the one-expert model MetaHeac may choose, when MetaHeac's does).
            let chooses = |g: General| {
                methods
                    .iter()
                    .any(|m| m.general() == Some(g) && m.chooses_online(&base_meta))
            };
            meta.online_select =
                chooses(g) || (select_experts && g == General::WoHe && chooses(General::MetaHeac));
            let model = mc.init(Init::Seeded(seed), &device);
            let schedule::Setup {
                mut trainer,
                validation,
                ..
            } = schedule::setup(model, meta.clone(), &finetune, &data.users, &train, seed);
            let bar = progress::steps(0, &format!("seed {seed} pretrain {g:?}"));
            let t = Instant::now();
            let report = schedule::fit(
                &mut trainer,
                Some(&validation),
                a.max_iterations,
                &mut |p| match p {
                    Progress::Step {
                        iteration,
                        total,
                        loss,
                        ..
                    } => {
                        bar.set_length(total as u64);
                        bar.set_position(iteration as u64);
                        bar.set_prefix(format!("loss {loss:.4}"));
                    }
                    Progress::Validated {
                        iteration,
                        auc,
                        best,
                    } => {
                        bar.set_message(format!(
                            "val AUC {auc:.4}{} @ {iteration}",
                            if best { " *" } else { "" }
                        ));
                    }
                },
            )?;
            let mut general = trainer.into_model();
            let mut refit = String::new();
            if meta.val_refit {
                bar.reset();
                bar.set_message("refit on all training campaigns");
                if let Some((m, iterations)) = schedule::refit(
                    mc.init(Init::Seeded(seed), &device),
                    meta.clone(),
                    &data.users,
                    &train,
                    seed,
                    &report,
                    &mut |p| {
                        if let Progress::Step {
                            iteration, total, ..
                        } = p
                        {
                            bar.set_length(total as u64);
                            bar.set_position(iteration as u64);
                        }
                    },
                )? {
                    general = m;
                    refit = format!(", refit {iterations} iterations");
                }
            }
            bar.finish_and_clear();
            eprintln!(
                "  seed {seed} {g:?}: {} iterations, best {} (validation AUC {}){}{refit}, {:.1} s",
                report.iterations,
                report.best_iteration,
                report.best_auc.map_or("-".into(), |v| format!("{v:.4}")),
                report.online.as_ref().map_or(String::new(), |o| format!(
                    ", online recipe {}",
                    o.recipe.name()
                )),
                t.elapsed().as_secs_f64()
            );
            // `metaheac-margin`'s margin: the experts choice's.
            let margin = base_meta.select_experts_margin;
            recipes.insert(g, Recipes::of(report.online.as_ref(), margin));
            pretrain
                .entry(format!("{g:?}"))
                .or_default()
                .push(PretrainResult {
                    seed,
                    iterations: report.iterations,
                    best_iteration: report.best_iteration,
                    best_validation_auc: report.best_auc,
                    seconds: t.elapsed().as_secs_f64(),
                    online: report.online.clone(),
                    experts: None,
                    similar: None,
                    online_with_prior: None,
                });
            models.insert(g, general);
            reports.insert(g, report);
            validations.insert(g, validation);
        }
        if select_experts {
            // Same campaigns, split and seed: the two fits' validation campaigns are the same.
            let (choice, i) = ExpertsChoice::choose(
                &[
                    (base_model.num_experts, &reports[&General::MetaHeac]),
                    (1, &reports[&General::WoHe]),
                ],
                base_meta.select_experts_margin,
            );
            eprintln!(
                "  seed {seed} MetaHeac: kept {} (validation mean AUC as deployed: {})",
                if choice.experts == 1 {
                    "one expert".to_string()
                } else {
                    format!("{} experts", choice.experts)
                },
                choice.tried_summary()
            );
            if ensemble {
                eight = Some((
                    models[&General::MetaHeac].clone(),
                    recipes[&General::MetaHeac].chosen,
                ));
            }
            if i == 1 {
                let one = models[&General::WoHe].clone();
                models.insert(General::MetaHeac, one);
                recipes.insert(General::MetaHeac, recipes[&General::WoHe]);
            }
            if let Some(r) = pretrain
                .get_mut(&format!("{:?}", General::MetaHeac))
                .and_then(|v| v.last_mut())
            {
                r.experts = Some(choice);
            }
        }
        // Whether MetaHeac's online stage starts from the similar campaigns' prior, as `pretrain`
        // decides it for the model the experts choice kept (every general model holds out the same
        // validation campaigns; the comparison on them is made and kept either way).
        let mut similar_used = false;
        if select_similar {
            let t = Instant::now();
            let deployed = library
                .as_ref()
                .expect("made when MetaHeac may take the prior");
            let mut choice = schedule::choose_similar(
                &validations[&General::MetaHeac],
                &models[&General::MetaHeac],
                recipes[&General::MetaHeac].chosen,
                deployed,
                base_meta.similar,
                base_meta.select_similar_margin,
            )?;
            similar_used = schedule::settle_similar(base_meta.similar, &mut choice, deployed);
            eprintln!(
                "  seed {seed} MetaHeac: {} the similar campaigns' prior{}; {:.1} s",
                if similar_used {
                    "takes"
                } else {
                    "does not take"
                },
                choice.as_ref().map_or(String::new(), |c| format!(
                    " (validation mean AUC {})",
                    c.summary()
                )),
                t.elapsed().as_secs_f64()
            );
            if let Some(r) = pretrain
                .get_mut(&format!("{:?}", General::MetaHeac))
                .and_then(|v| v.last_mut())
            {
                r.similar = choice;
            }
        }
        // The recipe chosen again with the prior folded in: for `metaheac-recipe-prior`, and for
        // MetaHeac where it takes the prior and `MetaConfig::online_with_prior` says so.
        if base_meta.online_select
            && (methods.contains(&Method::MetaHeacRecipePrior)
                || (similar_used && base_meta.online_with_prior))
        {
            let t = Instant::now();
            let deployed = library.as_ref().expect("made for a method that needs it");
            let (choice, _) = schedule::choose_online_with_prior(
                &validations[&General::MetaHeac],
                &models[&General::MetaHeac],
                deployed,
                base_meta.online_average,
                base_meta.online_margin,
            )?;
            eprintln!(
                "  seed {seed} MetaHeac: recipe with the similar campaigns' prior, on a fresh split: {} \
                 ({}); {:.1} s",
                choice.recipe.name(),
                choice.tried_summary(),
                t.elapsed().as_secs_f64()
            );
            if let Some(r) = recipes.get_mut(&General::MetaHeac) {
                r.with_prior = Some(choice.applied(true));
            }
            if let Some(r) = pretrain
                .get_mut(&format!("{:?}", General::MetaHeac))
                .and_then(|v| v.last_mut())
            {
                r.online_with_prior = Some(choice);
            }
        }
        let bar = progress::steps(
            (tests.len() * methods.len()) as u64,
            &format!("seed {seed} expand"),
        );
        for &m in &methods {
            if !m.uses_seed()
                && let Some(first) = results.get(&m).and_then(|r| r.first()).cloned()
            {
                results.entry(m).or_default().push(first);
                bar.inc(tests.len() as u64);
                continue;
            }
            let mut per = Vec::with_capacity(tests.len());
            for (i, c) in tests.iter().enumerate() {
                bar.set_prefix(format!("{} {}", m.name(), c.aid));
                let task = Task {
                    users: &data.users,
                    ad: &c.ad,
                    train: &c.stage1,
                    candidates: &c.stage2,
                    seed: seed.wrapping_mul(1_000_003) ^ i as u64,
                    library: library.as_ref(),
                };
                let general = m.general().map(|g| &models[&g]);
                let e = if m == Method::MetaHeacEnsemble {
                    let (eight, recipe) = eight.as_ref().expect("kept when the ensemble runs");
                    let tune = |method, model, recipe: OnlineRecipe| {
                        baselines::expand(
                            method,
                            Some(model),
                            &base_model,
                            &device,
                            &task,
                            &recipe.apply(finetune.clone()),
                            &lr_config,
                        )
                    };
                    let a = tune(Method::MetaHeac, eight, *recipe)?;
                    let b = tune(
                        Method::MetaHeacWoHe,
                        &models[&General::WoHe],
                        recipes[&General::WoHe].chosen,
                    )?;
                    baselines::Expansion::averaged(a, &b)
                } else if m == Method::MetaHeacBlend {
                    // The two runs `metaheac-soup` averages, each scored, their log-odds averaged.
                    let tune = |recipe: OnlineRecipe| {
                        baselines::expand(
                            Method::MetaHeac,
                            general,
                            &base_model,
                            &device,
                            &task,
                            &recipe.apply(finetune.clone().with_soup(false)),
                            &lr_config,
                        )
                    };
                    let a = tune(OnlineRecipe::NoWideFit)?;
                    let b = tune(OnlineRecipe::WideOnly)?;
                    baselines::Expansion::averaged(a, &b)
                } else {
                    baselines::expand(
                        as_run(m, similar_used),
                        general,
                        &base_model,
                        &device,
                        &task,
                        &online(m, &recipes, &base_meta, &finetune, similar_used),
                        &lr_config,
                    )?
                };
                let labels: Vec<bool> = c.stage2.iter().map(|r| r.label).collect();
                per.push(CampaignMetrics::new(
                    &c.aid,
                    c.seeds(),
                    &labels,
                    &e.scores,
                    a.top_fraction,
                )?);
                bar.inc(1);
            }
            results.entry(m).or_default().push(per);
        }
        bar.finish_and_clear();
        if a.svg.is_some() && seed == seeds[0] {
            traces = trace_campaign(
                &methods,
                &models,
                &base_model,
                &device,
                &tests,
                &data.users,
                seed,
                &recipes,
                &base_meta,
                &finetune,
                &lr_config,
                library.as_ref().filter(|_| similar_used),
            )?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let group = |m: Method, role: Role| -> GroupResult {
        let idx: Vec<usize> = (0..tests.len())
            .filter(|&i| tests[i].role == role)
            .collect();
        let runs = &results[&m];
        let groups: Vec<GroupMetrics> = runs
            .iter()
            .map(|per| GroupMetrics::new(idx.iter().map(|&i| per[i].clone()).collect(), &[], &[]))
            .collect();
        // A metric of campaign i averaged over the seeds whose run has an AUC there (the campaigns
        // the group means keep).
        let campaign_mean = |method: Method, i: usize, metric: Metric| -> Option<f64> {
            let v: Vec<f64> = results[&method]
                .iter()
                .filter(|per| per[i].auc.is_some())
                .filter_map(|per| metric(&per[i]))
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let against_metaheac = |metric: Metric| {
            (m != Method::MetaHeac && results.contains_key(&Method::MetaHeac))
                .then(|| {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    for &i in &idx {
                        if let (Some(p), Some(q)) = (
                            campaign_mean(m, i, metric),
                            campaign_mean(Method::MetaHeac, i, metric),
                        ) {
                            x.push(p);
                            y.push(q);
                        }
                    }
                    paired(&x, &y)
                })
                // A group with no campaign to pair (no hot campaign in a small world) has no comparison.
                .filter(|p| p.n > 0)
        };
        GroupResult {
            mean_auc: Stat::of(groups.iter().map(|g| g.mean_auc).collect()),
            precision: Stat::of(groups.iter().map(|g| g.precision).collect()),
            recall: Stat::of(groups.iter().map(|g| g.recall).collect()),
            campaigns: groups.first().map_or(0, |g| g.campaigns),
            vs_metaheac: against_metaheac(|c| c.auc),
            vs_metaheac_precision: against_metaheac(|c| c.precision),
            per_campaign: idx
                .iter()
                .map(|&i| {
                    (
                        tests[i].aid.clone(),
                        tests[i].seeds(),
                        campaign_mean(m, i, |c| c.auc),
                        campaign_mean(m, i, |c| c.precision),
                    )
                })
                .collect(),
        }
    };
    let mut table: BTreeMap<String, MethodResult> = BTreeMap::new();
    for &m in &methods {
        table.insert(
            m.name().to_string(),
            MethodResult {
                cold: group(m, Role::Cold),
                hot: group(m, Role::Hot),
            },
        );
    }
    print_tables(&methods, &table, a.top_fraction);
    // The candidates are the same for every method and seed: read them off the first run.
    let first = &results[&methods[0]][0];
    let test_campaigns: BTreeMap<&'static str, TestCampaigns> =
        [("cold", Role::Cold), ("hot", Role::Hot)]
            .into_iter()
            .map(|(name, role)| {
                let of_role: Vec<CampaignMetrics> = (0..tests.len())
                    .filter(|&i| tests[i].role == role)
                    .map(|i| first[i].clone())
                    .collect();
                (name, TestCampaigns::of(&of_role, a.top_fraction))
            })
            .collect();
    println!();
    println!(
        "{}",
        TestCampaigns::line(
            &test_campaigns["cold"],
            &test_campaigns["hot"],
            a.top_fraction
        )
    );
    eprintln!("bench finished in {seconds:.1} s");
    if let Some(dir) = &a.svg {
        draw(dir, &a.data, &methods, &table, seeds.len(), traces.as_ref())?;
    }
    if let Some(path) = &a.json {
        let report = Report {
            data: a.data.display().to_string(),
            protocol: a.protocol,
            seeds,
            top_fraction: a.top_fraction,
            seconds,
            methods: table,
            pretrain,
            test_campaigns,
        };
        crate::write_json(path, &report)?;
    }
    Ok(())
}

/// Traced fine-tunes of several methods on one campaign.
struct Traces {
    aid: String,
    runs: Vec<(Method, Vec<TracePoint>)>,
}

/// The online recipes a general model's validation campaigns chose: the choice, and the best single
/// run (`metaheac-single`; they differ where the choice averages two runs).
#[derive(Debug, Clone, Copy, Default)]
struct Recipes {
    chosen: OnlineRecipe,
    single: OnlineRecipe,
    /// The one the choice gives with a margin of this many standard errors (`metaheac-margin`).
    margin: OnlineRecipe,
    /// The one chosen with the similar campaigns' prior (`metaheac-recipe-prior`; set after the
    /// experts choice, for the model it kept, where it was chosen).
    with_prior: Option<OnlineRecipe>,
}

impl Recipes {
    fn of(choice: Option<&lookalike_core::schedule::OnlineChoice>, margin: f64) -> Recipes {
        choice.map_or_else(Recipes::default, |c| Recipes {
            chosen: c.applied(true),
            single: c.applied(false),
            margin: c.with_margin(margin),
            with_prior: None,
        })
    }
}

/// How `method` fine-tunes: `finetune`, with the online recipe its general model's validation chose
/// where the method uses one (see [`Method::chooses_online`]; `meta`: the offline configuration as
/// given; `prior`: whether MetaHeac takes the similar campaigns' prior, and then with the recipe
/// chosen with it where `meta.online_with_prior` says so, as `pretrain` does).
fn online(
    method: Method,
    recipes: &BTreeMap<General, Recipes>,
    meta: &MetaConfig,
    finetune: &FineTuneConfig,
    prior: bool,
) -> FineTuneConfig {
    let recipe = match method.general() {
        Some(g) if method.chooses_online(meta) => recipes[&g],
        _ => Recipes::default(),
    };
    match method {
        // Two runs averaged, whatever was chosen.
        Method::MetaHeacSoup => finetune.clone().with_soup(true),
        Method::MetaHeacSingle => recipe.single.apply(finetune.clone()),
        Method::MetaHeacMargin => recipe.margin.apply(finetune.clone()),
        m if m == Method::MetaHeacRecipePrior
            || (m == Method::MetaHeac && prior && meta.online_with_prior) =>
        {
            recipe
                .with_prior
                .unwrap_or(recipe.chosen)
                .apply(finetune.clone())
        }
        _ => recipe.chosen.apply(finetune.clone()),
    }
}

/// What runs for `method`: MetaHeac as shipped starts from the similar campaigns' prior where its
/// general model takes it (`prior`), as `metaheac-similar` does on every campaign.
fn as_run(method: Method, prior: bool) -> Method {
    match method {
        Method::MetaHeac if prior => Method::MetaHeacSimilar,
        m => m,
    }
}

/// Fine-tunes the methods of the paper's Fig. 3 that were run (MLP one-stage, MMoE, Hubble, MetaHeac)
/// on one cold campaign, the one with the median seed count (chosen by size, not by result), scoring
/// its candidates along the way (`prior`: the library MetaHeac's prior comes from, where its
/// validation chose one). Returns the campaign's id and the traces.
#[allow(clippy::too_many_arguments)]
fn trace_campaign(
    methods: &[Method],
    models: &BTreeMap<General, lookalike_core::model::MetaHeac>,
    scratch: &lookalike_core::model::MetaHeacConfig,
    device: &lookalike_core::burn::tensor::Device,
    tests: &[&lookalike_core::data::Campaign],
    users: &UserTable,
    seed: u64,
    recipes: &BTreeMap<General, Recipes>,
    meta: &MetaConfig,
    finetune: &FineTuneConfig,
    lr_config: &LrConfig,
    prior: Option<&lookalike_core::similar::Library>,
) -> Result<Option<Traces>> {
    let mut cold: Vec<usize> = (0..tests.len())
        .filter(|&i| tests[i].role == Role::Cold)
        .collect();
    if cold.is_empty() {
        cold = (0..tests.len()).collect();
    }
    cold.sort_by_key(|&i| (tests[i].seeds(), i));
    let i = cold[cold.len() / 2];
    let c = tests[i];
    let task = Task {
        users,
        ad: &c.ad,
        train: &c.stage1,
        candidates: &c.stage2,
        seed: seed.wrapping_mul(1_000_003) ^ i as u64,
        library: prior,
    };
    let mut out = Vec::new();
    for m in [
        Method::MlpOneStage,
        Method::MmoePre,
        Method::Hubble,
        Method::MetaHeac,
    ] {
        if !methods.contains(&m) {
            continue;
        }
        let general = m.general().map(|g| &models[&g]);
        if let baselines::Start::Model(start) = baselines::start(
            as_run(m, prior.is_some()),
            general,
            scratch,
            device,
            &task,
            lr_config,
        )? {
            let points = trace(
                *start,
                &online(m, recipes, meta, finetune, prior.is_some()),
                users,
                &c.ad,
                &c.stage1,
                &c.stage2,
                task.seed,
            )?;
            out.push((m, points));
        }
    }
    Ok((!out.is_empty()).then(|| Traces {
        aid: c.aid.clone(),
        runs: out,
    }))
}

/// Writes the charts of `--svg`.
fn draw(
    dir: &std::path::Path,
    data: &std::path::Path,
    methods: &[Method],
    table: &BTreeMap<String, MethodResult>,
    seeds: usize,
    traces: Option<&Traces>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let world = data.file_stem().map_or_else(
        || data.display().to_string(),
        |s| s.to_string_lossy().into(),
    );
    let ms = |s: &Stat| s.mean.zip(s.std);
    let by_method: Vec<charts::MethodAuc> = methods
        .iter()
        .map(|m| {
            let r = &table[m.name()];
            charts::MethodAuc {
                name: m.name(),
                values: [ms(&r.cold.mean_auc), ms(&r.hot.mean_auc)],
            }
        })
        .collect();
    charts::auc_by_method(
        &dir.join("auc-by-method.svg"),
        &format!("{world}: AUC per method over {seeds} seeds"),
        "mean campaign AUC (± std over seeds)",
        ["cold", "hot"],
        &by_method,
    )?;
    let by_seeds: Vec<charts::BySeeds> = methods
        .iter()
        .map(|m| {
            let r = &table[m.name()];
            charts::BySeeds {
                name: m.name(),
                points: r
                    .cold
                    .per_campaign
                    .iter()
                    .chain(&r.hot.per_campaign)
                    .filter_map(|(_, s, auc, _)| auc.map(|a| (*s, a)))
                    .collect(),
            }
        })
        .collect();
    charts::auc_by_seeds(
        &dir.join("auc-by-seeds.svg"),
        &format!("{world}: AUC against seed-set size (all test campaigns)"),
        &by_seeds,
    )?;
    let mut written = vec!["auc-by-method.svg", "auc-by-seeds.svg"];
    if let Some(Traces { aid, runs }) = traces {
        let curves: Vec<charts::Curve> = runs
            .iter()
            .map(|(m, points)| charts::Curve {
                name: m.name(),
                points: points.clone(),
            })
            .collect();
        charts::finetune_curves(
            &dir.join("finetune-loss.svg"),
            &dir.join("finetune-auc.svg"),
            &format!("{world}: fine-tuning on campaign {aid}"),
            &curves,
        )?;
        written.extend(["finetune-loss.svg", "finetune-auc.svg"]);
    }
    eprintln!("wrote {} to {}", written.join(", "), dir.display());
    Ok(())
}

fn pm(s: &Stat) -> String {
    match (s.mean, s.std) {
        (Some(m), Some(sd)) => format!("{m:.4} ± {sd:.4}"),
        _ => "-".into(),
    }
}

fn print_tables(methods: &[Method], table: &BTreeMap<String, MethodResult>, frac: f64) {
    let pct = frac * 100.0;
    let first = &table[methods[0].name()];
    let (c, h) = (&first.cold, &first.hot);
    println!(
        "| method | cold AUC ({} campaigns) | cold P@{pct}% | cold R@{pct}% | hot AUC ({} campaigns) | hot P@{pct}% | hot R@{pct}% |",
        c.campaigns, h.campaigns
    );
    println!("|---|---|---|---|---|---|---|");
    for m in methods {
        let r = &table[m.name()];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.name(),
            pm(&r.cold.mean_auc),
            pm(&r.cold.precision),
            pm(&r.cold.recall),
            pm(&r.hot.mean_auc),
            pm(&r.hot.precision),
            pm(&r.hot.recall)
        );
    }
    if !table.contains_key(Method::MetaHeac.name()) {
        return;
    }
    let paired_table = |metric: &str, of: fn(&GroupResult) -> &Option<Paired>| {
        println!();
        println!(
            "Per campaign against MetaHeac ({metric} averaged over seeds; Δ = method − MetaHeac; p: paired t-test):"
        );
        println!();
        println!(
            "| method | cold Δ {metric} | cold wins over MetaHeac | cold p | hot Δ {metric} | hot wins over MetaHeac | hot p |"
        );
        println!("|---|---|---|---|---|---|---|");
        for m in methods.iter().filter(|&&m| m != Method::MetaHeac) {
            let r = &table[m.name()];
            let cell = |p: &Option<Paired>| match p {
                Some(p) => [
                    format!("{:+.4}", p.mean_diff),
                    match p.ties {
                        0 => format!("{} of {}", p.wins, p.n),
                        t => format!("{} of {} ({t} tied)", p.wins, p.n),
                    },
                    // One campaign has no spread to test against.
                    match p.p_value.is_finite() {
                        true => format!("{:.3}", p.p_value),
                        false => "-".into(),
                    },
                ],
                None => ["-".into(), "-".into(), "-".into()],
            };
            let (c, h) = (cell(of(&r.cold)), cell(of(&r.hot)));
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                m.name(),
                c[0],
                c[1],
                c[2],
                h[0],
                h[1],
                h[2]
            );
        }
    };
    paired_table("AUC", |g| &g.vs_metaheac);
    paired_table(&format!("P@{pct}%"), |g| &g.vs_metaheac_precision);
}
