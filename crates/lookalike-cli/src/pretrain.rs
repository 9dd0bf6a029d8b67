//! `lookalike pretrain`: the offline stage.

use crate::{BackendArg, Protocol, backend, load_prepared, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::checkpoint::Checkpoint;
use lookalike_core::data::Role;
use lookalike_core::meta::{EmbeddingUpdate, MetaConfig, MetaGrad, SimilarRule, TaskSampling};
use lookalike_core::model::{CriticCombine, GateContext, Init};
use lookalike_core::record::{self, Precision, RecordHeader, TrainingInfo};
use lookalike_core::schedule::{self, ExpertsChoice, Progress};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::Instant;

/// Meta-gradient of the offline stage.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MetaArg {
    FirstOrder,
    SecondOrder,
    /// Plain mini-batch training on all rows.
    None,
    /// MetaHeac's task batches without the inner step ("w/o Meta").
    NoAdaptation,
}

impl From<MetaArg> for MetaGrad {
    fn from(m: MetaArg) -> Self {
        match m {
            MetaArg::FirstOrder => MetaGrad::FirstOrder,
            MetaArg::SecondOrder => MetaGrad::SecondOrder,
            MetaArg::None => MetaGrad::None,
            MetaArg::NoAdaptation => MetaGrad::NoAdaptation,
        }
    }
}

/// How the embedding tables take the outer Adam step.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EmbeddingUpdateArg {
    /// Every row, every step (the reference).
    Dense,
    /// Only the rows each meta-batch touches (lazy Adam); each iteration computes on those rows alone.
    Lazy,
}

impl From<EmbeddingUpdateArg> for EmbeddingUpdate {
    fn from(e: EmbeddingUpdateArg) -> Self {
        match e {
            EmbeddingUpdateArg::Dense => EmbeddingUpdate::Dense,
            EmbeddingUpdateArg::Lazy => EmbeddingUpdate::Lazy,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CombineArg {
    Sum,
    Mean,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GateContextArg {
    FieldMean,
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SamplingArg {
    Proportional,
    Sqrt,
    Uniform,
}

impl From<SamplingArg> for TaskSampling {
    fn from(v: SamplingArg) -> Self {
        match v {
            SamplingArg::Proportional => TaskSampling::Proportional,
            SamplingArg::Sqrt => TaskSampling::Sqrt,
            SamplingArg::Uniform => TaskSampling::Uniform,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SimilarArg {
    /// The validation campaigns decide.
    Choose,
    /// Always, whatever validation measured.
    Always,
    /// Never.
    Never,
}

impl From<SimilarArg> for SimilarRule {
    fn from(v: SimilarArg) -> Self {
        match v {
            SimilarArg::Choose => SimilarRule::Choose,
            SimilarArg::Always => SimilarRule::Always,
            SimilarArg::Never => SimilarRule::Never,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PrecisionArg {
    F32,
    F16,
}

/// Hyper-parameters left out take the defaults of `MetaHeacConfig` and `MetaConfig` (or their
/// `reference()` with `--protocol reference`).
#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (from `lookalike prepare`).
    #[arg(long)]
    data: PathBuf,
    /// Record to write.
    #[arg(long)]
    out: PathBuf,
    /// Schedule: the product's (train until validation AUC stops improving) or the official code's
    /// (one epoch).
    #[arg(long, value_enum, default_value_t = Protocol::Product)]
    protocol: Protocol,
    /// Meta-gradient [default: first-order].
    #[arg(long, value_enum)]
    meta: Option<MetaArg>,
    /// Embedding tables' Adam step: lazy (the rows a meta-batch touches) or dense (every row, the
    /// reference) [default: lazy; reference: dense].
    #[arg(long, value_enum)]
    embedding_update: Option<EmbeddingUpdateArg>,
    /// Threads the tasks of a meta-batch are spread over on the CPU (the result does not depend on
    /// it) [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Experts n [default: 8; 1 = "w/o HE"].
    #[arg(long)]
    experts: Option<usize>,
    /// Critics m [default: 5; 1 = "w/o HC"].
    #[arg(long)]
    critics: Option<usize>,
    /// Train exactly this many epochs (ceil(training rows / 512) iterations each), without validation.
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many iterations (for quick runs and benchmarks).
    #[arg(long)]
    max_iterations: Option<usize>,
    /// Fraction of training campaigns held out for validation [default: 0.2; reference 0].
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Stored weight precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// flex (CPU), wgpu, wgpu-cpu (software Vulkan such as lavapipe) or cuda.
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Embedding dimension D [default: 64].
    #[arg(long)]
    embed_dim: Option<usize>,
    /// Standard deviation of the embedding initialisation [default: 1, PyTorch's].
    #[arg(long)]
    embed_init_std: Option<f64>,
    /// The wide part (a weight per user token added to the critic mixture's logit) [default: see
    /// MetaHeacConfig].
    #[arg(long)]
    wide: Option<bool>,
    /// In validation's fine-tuning, refit on all rows once the held-out rows have chosen [default: true].
    #[arg(long)]
    refit: Option<bool>,
    /// Learning rate of the fine-tuning that validation runs (the online stage's) [default: 1e-3].
    #[arg(long)]
    finetune_lr: Option<f64>,
    /// Folds that choose the wide part's strength in validation's fine-tuning [default: 0: the
    /// held-out rows choose].
    #[arg(long)]
    wide_folds: Option<usize>,
    /// How critics combine: sum (official) or mean (MTReclib, divides by m).
    #[arg(long, value_enum)]
    critic_combine: Option<CombineArg>,
    /// What the gates see: field-mean (per-sample mean of user-field embeddings, official) or none.
    #[arg(long, value_enum)]
    gate_context: Option<GateContextArg>,
    /// Task sampling: proportional to rows (reference), sqrt, or uniform.
    #[arg(long, value_enum)]
    task_sampling: Option<SamplingArg>,
    /// Campaigns per meta-batch [default: 5].
    #[arg(long)]
    task_count: Option<usize>,
    /// Support rows per task [default: 512].
    #[arg(long)]
    support: Option<usize>,
    /// Query rows per task [default: 512].
    #[arg(long)]
    query: Option<usize>,
    /// Draw support and query without overlap.
    #[arg(long)]
    disjoint: bool,
    /// Inner SGD learning rate α [default: 2e-4].
    #[arg(long)]
    inner_lr: Option<f64>,
    /// Inner steps [default: 1].
    #[arg(long)]
    inner_steps: Option<usize>,
    /// Outer Adam learning rate β [default: 1e-3].
    #[arg(long)]
    outer_lr: Option<f64>,
    /// Validate every this many iterations [default: 50].
    #[arg(long)]
    val_every: Option<usize>,
    /// Stop after this many validations without a better AUC [default: 4].
    #[arg(long)]
    val_patience: Option<usize>,
    /// ... but not before the training rows have been read this many times over [default: 1].
    #[arg(long)]
    val_min_passes: Option<f64>,
    /// Score both halves of each validation campaign, each after fine-tuning on the other (false: one
    /// half, as before) [default: true].
    #[arg(long)]
    val_crossfit: Option<bool>,
    /// After training, let the validation campaigns choose the online stage's recipe for this model
    /// (the record carries it; `eval`, `finetune`, `expand` and the web page apply it) [default: true;
    /// reference: false].
    #[arg(long)]
    online_select: Option<bool>,
    /// ... with the average of two runs (Adam steps without the wide fit, the wide fit alone) among
    /// the recipes, scored from the fine-tunes those two recipes run anyway (false: single runs only)
    /// [default: true].
    #[arg(long)]
    online_average: Option<bool>,
    /// ... keeping the default recipe (that average, where tried) unless another leads it on the
    /// validation campaigns by more than this many standard errors (0: the highest mean) [default: 0].
    #[arg(long, value_parser = crate::standard_errors)]
    online_margin: Option<f64>,
    /// After training, let the validation campaigns choose between these experts and one (a second
    /// general model, one expert, trained on the same campaigns in about a third of the time; the
    /// record keeps the better) [default: true, unless --experts is given; reference: false].
    #[arg(long)]
    select_experts: Option<bool>,
    /// Once validation has chosen (the kept iteration, the online recipe, the experts), meta-train the
    /// kept configuration again on every training campaign, the validation ones included, for as
    /// many passes over the rows as the kept iteration made (measured: no consistent gain; README,
    /// "Offline: refit on the validation campaigns too?") [default: false].
    #[arg(long)]
    val_refit: Option<bool>,
    /// Whether the online stage starts from the prior of the past campaigns most like the new one
    /// (LR fits of the training campaigns, carried in the record): as the validation campaigns
    /// choose, always, or never [default: always; reference: never].
    #[arg(long, value_enum)]
    similar: Option<SimilarArg>,
    /// With `--similar choose`: take the prior only where its lead over the validation campaigns
    /// exceeds this many standard errors of the paired difference [default: 0, a higher mean].
    #[arg(long, value_parser = crate::standard_errors)]
    similar_margin: Option<f64>,
    /// Where the prior is taken, choose the online recipe again with it folded in, on the
    /// validation campaigns split again; the record carries that recipe [default: false].
    #[arg(long)]
    online_with_prior: Option<bool>,
    /// Write a checkpoint (atomically, replacing the last) every this many minutes, so that a killed
    /// run can go on with --resume; 0 writes one after every iteration.
    #[arg(long, default_value_t = 10.0)]
    checkpoint_every: f64,
    /// Where checkpoints go [default: the record's name with `.ckpt` added]. Removed when the run
    /// finishes.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue the run that wrote this checkpoint (give it the same data and flags): the record is
    /// the one an uninterrupted run writes (same seed, CPU).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// For tests: write the checkpoint of iteration N and stop, as if killed.
    #[arg(long, hide = true)]
    halt_after: Option<usize>,
}

pub fn meta_config(a: &Args, base: MetaConfig) -> MetaConfig {
    let mut m = base;
    if let Some(v) = a.meta {
        m.meta_grad = v.into();
    }
    if let Some(v) = a.embedding_update {
        m.embedding_update = v.into();
    }
    m.threads = a.backend.task_threads(a.threads, m.threads);
    if let Some(v) = a.task_sampling {
        m.task_sampling = v.into();
    }
    if let Some(e) = a.epochs {
        // A fixed number of epochs is the reference schedule: no validation.
        m.epochs = e;
        m.val_fraction = 0.0;
    }
    m.val_fraction = a.val_fraction.unwrap_or(m.val_fraction);
    m.task_count = a.task_count.unwrap_or(m.task_count);
    m.support_size = a.support.unwrap_or(m.support_size);
    m.query_size = a.query.unwrap_or(m.query_size);
    m.disjoint_support_query = a.disjoint || m.disjoint_support_query;
    m.inner_lr = a.inner_lr.unwrap_or(m.inner_lr);
    m.inner_steps = a.inner_steps.unwrap_or(m.inner_steps);
    m.outer_lr = a.outer_lr.unwrap_or(m.outer_lr);
    m.val_every = a.val_every.unwrap_or(m.val_every);
    m.val_patience = a.val_patience.unwrap_or(m.val_patience);
    m.val_min_passes = a.val_min_passes.unwrap_or(m.val_min_passes);
    m.val_crossfit = a.val_crossfit.unwrap_or(m.val_crossfit);
    m.online_select = a.online_select.unwrap_or(m.online_select);
    m.online_average = a.online_average.unwrap_or(m.online_average);
    m.online_margin = a.online_margin.unwrap_or(m.online_margin);
    m.val_refit = a.val_refit.unwrap_or(m.val_refit);
    if let Some(r) = a.similar {
        m.similar = r.into();
    }
    m.select_similar_margin = a.similar_margin.unwrap_or(m.select_similar_margin);
    m.online_with_prior = a.online_with_prior.unwrap_or(m.online_with_prior);
    // Experts the user fixed stay fixed unless they ask for the choice too.
    m.select_experts = a
        .select_experts
        .unwrap_or(m.select_experts && a.experts.is_none());
    m
}

pub fn run(a: Args) -> Result<()> {
    let data = load_prepared(&a.data)?;
    let device = backend(a.backend)?;
    let precision = match a.precision {
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F16 => Precision::F16,
    };
    let (mut mc, base_meta, finetune) = a.protocol.configs(&data.schema);
    if a.embed_init_std
        .is_some_and(|s| !(s > 0.0 && s.is_finite()))
    {
        bail!("--embed-init-std must be a positive number");
    }
    mc.num_experts = a.experts.unwrap_or(mc.num_experts);
    mc.num_critics = a.critics.unwrap_or(mc.num_critics);
    mc.embed_dim = a.embed_dim.unwrap_or(mc.embed_dim);
    mc.embed_init_std = a.embed_init_std.unwrap_or(mc.embed_init_std);
    mc.wide = a.wide.unwrap_or(mc.wide);
    let lr = a.finetune_lr.unwrap_or(finetune.lr);
    let refit = a.refit.unwrap_or(finetune.refit);
    let folds = a.wide_folds.unwrap_or(finetune.wide_folds);
    let finetune = finetune
        .with_lr(lr)
        .with_refit(refit)
        .with_wide_folds(folds);
    if let Some(c) = a.critic_combine {
        mc.critic_combine = match c {
            CombineArg::Sum => CriticCombine::Sum,
            CombineArg::Mean => CriticCombine::Mean,
        };
    }
    if let Some(g) = a.gate_context {
        mc.gate_context = match g {
            GateContextArg::FieldMean => GateContext::FieldMean,
            GateContextArg::None => GateContext::None,
        };
    }
    if mc.num_experts == 0 || mc.num_critics == 0 || mc.embed_dim == 0 {
        bail!("--experts, --critics and --embed-dim must be at least 1");
    }
    let meta = meta_config(&a, base_meta);
    if meta.task_count == 0 || meta.support_size == 0 || meta.query_size == 0 || meta.epochs == 0 {
        bail!("--task-count, --support, --query and --epochs must be at least 1");
    }
    if !(0.0..1.0).contains(&meta.val_fraction) {
        bail!("--val-fraction must be in [0, 1)");
    }
    if !(meta.val_min_passes >= 0.0 && meta.val_min_passes.is_finite()) {
        bail!("--val-min-passes must be a number of passes over the training rows, 0 or more");
    }
    let all_train = data.with_role(Role::Train);
    if all_train.iter().all(|c| c.stage1.is_empty()) {
        bail!(
            "{}: no training campaign has stage-1 rows",
            a.data.display()
        );
    }
    let model = mc.init(Init::Seeded(a.seed), &device.clone().autodiff());
    let parameters = record::parameter_count(&model);
    let schedule::Setup {
        mut trainer,
        validation,
        train_campaigns,
        ..
    } = schedule::setup(
        model,
        meta.clone(),
        &finetune,
        &data.users,
        &all_train,
        a.seed,
    );
    if validation.is_empty() {
        eprintln!(
            "meta-training ({:?}) on {} campaigns, {} rows: {} iterations (no validation), {} parameters, backend {}",
            meta.meta_grad,
            train_campaigns,
            trainer.training_rows(),
            a.max_iterations.map_or(trainer.total_iterations(), |m| m
                .min(trainer.total_iterations())),
            parameters,
            a.backend.name()
        );
    } else {
        eprintln!(
            "meta-training ({:?}) on {} campaigns, {} rows, validated every {} iterations on {} held-out campaigns (patience {}, not before iteration {}, at most {} iterations), {} parameters, backend {}",
            meta.meta_grad,
            train_campaigns,
            trainer.training_rows(),
            meta.val_every,
            validation.len(),
            meta.val_patience,
            trainer.patience_floor(),
            a.max_iterations
                .unwrap_or(meta.max_iterations)
                .min(meta.max_iterations),
            parameters,
            a.backend.name()
        );
    }
    if !(a.checkpoint_every >= 0.0 && a.checkpoint_every.is_finite()) {
        bail!("--checkpoint-every must be a number of minutes, 0 or more");
    }
    let checkpoint_path = a.checkpoint.clone().unwrap_or_else(|| {
        let mut name = a.out.as_os_str().to_owned();
        name.push(".ckpt");
        PathBuf::from(name)
    });
    // What a resume must match: the data, every setting that shapes training, the seed and limits.
    let run = serde_json::json!({
        "data": a.data.file_name().map(|n| n.to_string_lossy().to_string()),
        "data_bytes": std::fs::metadata(&a.data).map(|m| m.len()).ok(),
        "model": &mc,
        "meta": &meta,
        "finetune": &finetune,
        "seed": a.seed,
        "max_iterations": a.max_iterations,
        "backend": a.backend.name(),
    });
    let resume = match &a.resume {
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
            let c = Checkpoint::from_bytes(&bytes).with_context(|| format!("{}", p.display()))?;
            eprintln!(
                "resuming from {} at iteration {} of {}{}",
                p.display(),
                c.header.trainer.iteration,
                c.header.total,
                if c.header.configured.is_some() {
                    " of the one-expert model (the configured model finished)"
                } else {
                    ""
                }
            );
            Some(c)
        }
        None => None,
    };
    let bar = progress::steps(0, "pretrain");
    let start = Instant::now();
    let mut rows = 0usize;
    let mut last_log = 0usize;
    // When training's last step or validation ended: what follows in the fit is the recipe's choice.
    let last_event = Cell::new(Instant::now());
    let mut on_progress = |p: Progress| match p {
        Progress::Step {
            iteration,
            total,
            loss,
            rows: r,
        } => {
            last_event.set(Instant::now());
            rows += r;
            bar.set_length(total as u64);
            bar.set_position(iteration as u64);
            bar.set_prefix(format!("loss {loss:.4}"));
            if bar.is_hidden()
                && validation.is_empty()
                && iteration >= last_log + (total / 10).max(1)
            {
                last_log = iteration;
                eprintln!(
                    "  iteration {iteration}/{total}: loss {loss:.4}, {:.0} rows/s",
                    rows as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
        Progress::Validated {
            iteration,
            auc,
            best,
        } => {
            last_event.set(Instant::now());
            bar.suspend(|| {
                eprintln!(
                    "  iteration {iteration}: validation mean AUC {auc:.4}{} ({:.0} s)",
                    if best { " (best)" } else { "" },
                    start.elapsed().as_secs_f64()
                )
            });
        }
    };
    // While the one-expert model of the experts choice trains, each checkpoint also carries the
    // configured model's finished fit; `--halt-after` counts that model's iterations first.
    let finished: RefCell<Option<(schedule::FitReport, Vec<u8>)>> = RefCell::new(None);
    let offset = Cell::new(0usize);
    let mut last_checkpoint = Instant::now();
    let mut due = |i: usize| {
        let due = a.halt_after == Some(offset.get() + i)
            || last_checkpoint.elapsed().as_secs_f64() >= a.checkpoint_every * 60.0;
        if due {
            last_checkpoint = Instant::now();
        }
        due
    };
    let checkpoint_bar = bar.clone();
    let mut write = |c: &Checkpoint| -> std::result::Result<bool, String> {
        let t = Instant::now();
        let bytes = match &*finished.borrow() {
            None => c.to_bytes(),
            Some((report, weights)) => {
                let mut c = c.clone();
                c.header.configured = Some(report.clone());
                c.configured = Some(weights.clone());
                c.to_bytes()
            }
        }
        .map_err(|e| e.to_string())?;
        lookalike_data::atomic::write_atomic(&checkpoint_path, |w| w.write_all(&bytes))
            .map_err(|e| format!("{}: {e}", checkpoint_path.display()))?;
        checkpoint_bar.suspend(|| {
            eprintln!(
                "  iteration {}{}: checkpoint {} ({:.0} MB, {:.1} s)",
                c.header.trainer.iteration,
                if offset.get() > 0 {
                    " (one expert)"
                } else {
                    ""
                },
                checkpoint_path.display(),
                bytes.len() as f64 / 1e6,
                t.elapsed().as_secs_f64()
            )
        });
        Ok(a.halt_after == Some(offset.get() + c.header.trainer.iteration))
    };
    let halted = |r: &schedule::FitReport, which: &str| {
        bar.finish_and_clear();
        println!(
            "stopped after iteration {}{which} with a checkpoint in {} (--halt-after); go on with --resume",
            r.iterations,
            checkpoint_path.display()
        );
    };
    // A checkpoint of the one-expert model's fit resumes that fit; the configured one is done.
    let (resume, resume_one) = match resume {
        Some(c) if c.header.configured.is_some() => (None, Some(c)),
        c => (c, None),
    };
    let mut report = match &resume_one {
        Some(c) => {
            schedule::same_run(&c.header.run, &one_expert_run(&run))?;
            let general = record::load_weights(
                trainer.model().clone(),
                c.configured.as_deref().unwrap_or_default(),
            )
            .context("the checkpoint's configured weights")?;
            trainer.set_model(general);
            c.header.configured.clone().unwrap_or_default()
        }
        None => schedule::fit_resumable(
            &mut trainer,
            Some(&validation),
            a.max_iterations,
            resume.as_ref(),
            Some(schedule::Checkpointing {
                run: run.clone(),
                due: &mut due,
                write: &mut write,
            }),
            &mut on_progress,
        )?,
    };
    if report.halted {
        halted(&report, "");
        return Ok(());
    }
    // Iterations this process ran (a resumed run started after its checkpoint's).
    let resumed_at = match (&resume, &resume_one) {
        (Some(c), _) => c.header.trainer.iteration,
        (_, Some(c)) => c.header.configured.as_ref().map_or(0, |r| r.iterations),
        _ => 0,
    };
    let ran = report.iterations - resumed_at;
    let train_rows = trainer.training_rows();
    let mut general = trainer.into_model();
    let print_fit = |r: &schedule::FitReport, chosen_in: Option<f64>| {
        if let Some(b) = r.best_auc {
            println!(
                "kept the weights of iteration {} (validation mean AUC {b:.4}) of {}",
                r.best_iteration, r.iterations
            );
        }
        if let Some(o) = &r.online {
            println!(
                "online recipe: {} (validation mean AUC: {}{})",
                o.recipe.name(),
                o.tried_summary(),
                chosen_in.map_or(String::new(), |t| format!("; chosen in {t:.1} s"))
            );
        }
    };
    // A resumed one-expert fit: the configured model's choice was timed before the checkpoint.
    let since = || Some(last_event.get().elapsed().as_secs_f64());
    print_fit(&report, since().filter(|_| resume_one.is_none()));
    // The same campaigns, split and seed with one expert; validation keeps the better model.
    let mut experts = None;
    let mut alternative_ran = 0;
    if meta.select_experts && mc.num_experts > 1 && !validation.is_empty() {
        println!(
            "choosing the number of experts: {} or 1; training the one-expert general model",
            mc.num_experts
        );
        bar.reset();
        bar.set_message("one expert");
        let one = mc.clone().with_num_experts(1);
        let schedule::Setup {
            trainer: mut t1,
            validation: v1,
            ..
        } = schedule::setup(
            one.init(Init::Seeded(a.seed), &device.clone().autodiff()),
            meta.clone(),
            &finetune,
            &data.users,
            &all_train,
            a.seed,
        );
        *finished.borrow_mut() = Some((
            report.clone(),
            record::weights_to_bytes(&general, Precision::F32)?,
        ));
        offset.set(report.iterations);
        let r1 = schedule::fit_resumable(
            &mut t1,
            Some(&v1),
            a.max_iterations,
            resume_one.as_ref(),
            Some(schedule::Checkpointing {
                run: one_expert_run(&run),
                due: &mut due,
                write: &mut write,
            }),
            &mut on_progress,
        )?;
        if r1.halted {
            halted(&r1, " of the one-expert model");
            return Ok(());
        }
        print_fit(&r1, since());
        alternative_ran = r1.iterations
            - resume_one
                .as_ref()
                .map_or(0, |c| c.header.trainer.iteration);
        let alternative = t1.into_model();
        let (choice, i) = ExpertsChoice::choose(
            &[(mc.num_experts, &report), (1, &r1)],
            meta.select_experts_margin,
        );
        println!(
            "experts: {} (validation mean AUC as deployed: {}; one expert is kept only when ahead by more than {} standard error{})",
            choice.experts,
            choice.tried_summary(),
            meta.select_experts_margin,
            if meta.select_experts_margin == 1.0 {
                ""
            } else {
                "s"
            }
        );
        if i == 1 {
            general = alternative;
            mc = one;
            report = r1;
        }
        experts = Some(choice);
    }
    // Whether the online stage starts from the similar campaigns' prior: validation decides for the
    // kept model, and where it takes it the record carries every training campaign's LR.
    let mut similar = None;
    let mut library = None;
    if meta.similar != SimilarRule::Never && mc.wide {
        bar.reset();
        bar.set_message("similar campaigns");
        let t = Instant::now();
        let recipe = report
            .online
            .as_ref()
            .map(|o| o.applied(true))
            .unwrap_or_default();
        // The library the record would carry: every training campaign's LR; each validation
        // campaign's prior comes from the others.
        let lr = lookalike_core::lr::LrConfig::default();
        let onehot = lookalike_core::lr::OneHot::of_wide(&general);
        let lib = lookalike_core::similar::Library::fit(&onehot, &data.users, &all_train, &lr);
        let mut choice = schedule::choose_similar(
            &validation,
            &general,
            recipe,
            &lib,
            meta.similar,
            meta.select_similar_margin,
        )?;
        if schedule::settle_similar(meta.similar, &mut choice, &lib) {
            library = Some(std::sync::Arc::new(lib));
        }
        bar.suspend(|| {
            let validated = choice.as_ref().map_or(String::new(), |c| {
                format!(" (validation mean AUC {})", c.summary())
            });
            println!(
                "similar campaigns' prior: {}{validated}; {:.1} s",
                if library.is_some() { "taken" } else { "not taken" },
                t.elapsed().as_secs_f64()
            );
            if let Some(l) = &library {
                println!(
                    "  the record carries the LR fits of all {} training campaigns; the online stage averages those most like the new campaign ({} of them, by leaving each out)",
                    l.len(),
                    l.k_label()
                );
            }
        });
        similar = choice;
    }
    // With the prior taken, the recipe chosen again as the online stage will run.
    let mut online_without_prior = None;
    if let Some(l) = &library
        && meta.online_select
        && meta.online_with_prior
    {
        bar.reset();
        bar.set_message("online recipe with the prior");
        let t = Instant::now();
        let (choice, _) = schedule::choose_online_with_prior(
            &validation,
            &general,
            l,
            meta.online_average,
            meta.online_margin,
        )?;
        bar.suspend(|| {
            println!(
                "online recipe with the similar campaigns' prior: {} (validation mean AUC on a fresh split: {}; {:.1} s)",
                choice.recipe.name(),
                choice.tried_summary(),
                t.elapsed().as_secs_f64()
            )
        });
        online_without_prior = report.online.replace(choice);
    }
    // Validation has chosen: the kept configuration learns from its campaigns too. Not
    // checkpointed (it is as long as the fit up to its kept iteration): a run killed here resumes
    // from the fit's last checkpoint and refits again, to the same weights.
    let mut refit = None;
    if meta.val_refit {
        bar.reset();
        bar.set_message("refit on every training campaign");
        let refitted = schedule::refit(
            mc.init(Init::Seeded(a.seed), &device.clone().autodiff()),
            meta.clone(),
            &data.users,
            &all_train,
            a.seed,
            &report,
            &mut |p| {
                if let Progress::Step {
                    iteration,
                    total,
                    loss,
                    rows: r,
                } = p
                {
                    rows += r;
                    bar.set_length(total as u64);
                    bar.set_position(iteration as u64);
                    bar.set_prefix(format!("loss {loss:.4}"));
                }
            },
        )?;
        if let Some((m, steps)) = refitted {
            println!(
                "refit on all {} training campaigns (the {} validation ones too): {steps} iterations, as many passes over their rows as iteration {} made",
                all_train.len(),
                validation.len(),
                report.best_iteration
            );
            general = m;
            refit = Some(steps);
        }
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let total = report.iterations;
    let final_loss = report.final_loss;
    let header = RecordHeader {
        model: mc,
        schema: data.schema.clone(),
        precision,
        training: TrainingInfo {
            meta: Some(meta),
            seed: a.seed,
            iterations: total,
            train_campaigns,
            train_rows,
            seconds,
            rows_per_second: rows as f64 / seconds.max(1e-9),
            final_loss,
            backend: a.backend.name().to_string(),
            data: a
                .data
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            created_by: format!("lookalike {}", env!("CARGO_PKG_VERSION")),
            online: report.online.clone(),
            experts,
            refit,
            similar,
            online_without_prior,
        },
        parameters,
        campaign: None,
        library,
    };
    let bytes = record::to_bytes(&general, &header)?;
    lookalike_data::atomic::write_atomic(&a.out, |w| w.write_all(&bytes))
        .with_context(|| "writing the record")?;
    println!(
        "trained {} iterations{}{}{} in {:.1} s: {:.0} rows/s, {:.2} iterations/s, final loss {}",
        ran,
        if resumed_at > 0 {
            format!(" (resumed after iteration {resumed_at})")
        } else {
            String::new()
        },
        if alternative_ran > 0 {
            format!(" and {alternative_ran} of the one-expert model")
        } else {
            String::new()
        },
        refit.map_or(String::new(), |n| format!(", {n} of the refit")),
        seconds,
        header.training.rows_per_second,
        (ran + alternative_ran + refit.unwrap_or(0)) as f64 / seconds.max(1e-9),
        final_loss.map_or("-".into(), |l| format!("{l:.4}"))
    );
    println!(
        "wrote {} ({:.2} MB, {:?})",
        a.out.display(),
        bytes.len() as f64 / 1e6,
        precision
    );
    // The run is done: its checkpoint (if one was written) has no further use.
    if checkpoint_path.exists() {
        std::fs::remove_file(&checkpoint_path)
            .with_context(|| format!("{}: cannot remove", checkpoint_path.display()))?;
    }
    Ok(())
}

/// The run the experts choice's one-expert fit checkpoints under: the configured run's, marked.
fn one_expert_run(run: &serde_json::Value) -> serde_json::Value {
    let mut run = run.clone();
    if let Some(o) = run.as_object_mut() {
        o.insert("experts_choice_fit".into(), serde_json::json!(1));
    }
    run
}
