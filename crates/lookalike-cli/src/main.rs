//! `lookalike`: meta-train a MetaHeac general model on past campaigns (offline stage), evaluate it the
//! paper's way, compare it with the baselines, and expand a new campaign's seed list (online stage).
//! This file only dispatches: each subcommand is a module with its `Args` and `run`.

mod bench;
mod charts;
mod convert;
mod demo;
mod eval;
mod expand;
mod export_pool;
mod finetune;
mod inspect;
mod merge;
mod mtl;
mod prepare;
mod pretrain;
mod progress;
mod score;
mod score_throughput;
mod synth;
mod throughput;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lookalike_core::backend::BackendKind;
use lookalike_core::burn::tensor::Device;
use lookalike_data::prepare::Prepared;
use std::path::Path;

// Training allocates and frees megabyte-sized tensors every step; glibc's malloc returns each to the
// system (mmap/munmap and page faults each time), mimalloc keeps them for reuse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's option enum (the same place in its v2 and v3), which
/// libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[derive(Parser)]
#[command(
    name = "lookalike",
    version,
    about = "Look-alike audience expansion with MetaHeac (KDD 2021) on burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic world in the Tencent raw layout.
    Synth(synth::Args),
    /// Read a raw directory into one prepared binary dataset (vocabularies, users, campaigns, split).
    Prepare(prepare::Args),
    /// Meta-train the general model (offline stage) and export a record.
    Pretrain(pretrain::Args),
    /// Fine-tune on each test campaign's seeds, score its candidates, report AUC, P@5%, R@5% per group.
    Eval(eval::Args),
    /// Compare MetaHeac with the paper's baselines and ablations over several seeds (Tables 2 and 4).
    Bench(bench::Args),
    /// Meta-training speed and peak memory, dense against lazy embedding updates, side by side.
    Throughput(throughput::Args),
    /// Fine-tune the general model on a new campaign's seeds plus non-seeds sampled from the pool, and
    /// write the campaign's model (the online stage's first half).
    Finetune(finetune::Args),
    /// Rank a pool (or one shard of it) with a campaign's model and write the best users (second half).
    Score(score::Args),
    /// Scoring speed: the folded model `score` runs against the forward pass, side by side, with the
    /// FLOPs a user costs each way.
    ScoreThroughput(score_throughput::Args),
    /// Join the audiences of a pool's shards into the whole pool's.
    Merge(merge::Args),
    /// Expand a seed list: fine-tune on seeds plus sampled non-seeds, score the pool, write the top users.
    Expand(expand::Args),
    /// Write the candidate pool and campaigns of a prepared dataset in the web app's compact form.
    ExportPool(export_pool::Args),
    /// Describe a model record.
    Inspect(inspect::Args),
    /// Convert a user file between the text layout and Parquet.
    Convert(convert::Args),
    /// Multi-task mode (MTReclib: CTR and CTCVR on AliExpress-format data).
    #[command(subcommand)]
    Mtl(mtl::Command),
}

fn main() {
    // Output into a closed pipe (`lookalike inspect R | head`) ends the process quietly, as it does for
    // other Unix tools, instead of panicking in `println!`.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // mimalloc gives freed pages back to the system a second after their last use, and a training
    // step frees and reallocates the same tensors' pages, so the kernel faulted in and zeroed them
    // again each time. Keep them for reuse instead (peak memory is the same; meta-training measured
    // 3-7 % faster). `MIMALLOC_PURGE_DELAY` in the environment still decides when it is set.
    // SAFETY: sets a plain option value; mimalloc reads it when it next considers purging.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) };
    // burn builds a loaded optimizer state on `Device::default()`, which is the GPU when wgpu is
    // compiled in, and moves it to the parameters' device at the next step; make that default the
    // CPU, so that `pretrain --resume` does not wake a GPU driver (or fail without one). Every
    // model here runs on the device its `--backend` names, never on the default.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the first thing the process does, before any thread exists.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    let result = match Cli::parse().command {
        Command::Synth(a) => synth::run(a),
        Command::Prepare(a) => prepare::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Throughput(a) => throughput::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Score(a) => score::run(a),
        Command::ScoreThroughput(a) => score_throughput::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Expand(a) => expand::run(a),
        Command::ExportPool(a) => export_pool::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Mtl(c) => mtl::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Writes `value` as pretty JSON, atomically (`--json` of `eval`, `bench`, `mtl train`, `mtl bench`).
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    lookalike_data::atomic::write_atomic(path, |w| w.write_all(&json))
        .with_context(|| format!("{}", path.display()))
}

/// A margin in standard errors (`--online-margin`, `--similar-margin`): a finite number ≥ 0. A
/// negative margin would let a recipe that trails the default displace it, and NaN would never lead.
pub fn standard_errors(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of standard errors ≥ 0")),
    }
}

/// `--backend`: where the model runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BackendArg {
    /// Pure-Rust CPU backend.
    Flex,
    /// wgpu on the best adapter (Vulkan, Metal, DX12).
    Wgpu,
    /// wgpu on a software Vulkan adapter such as Mesa's lavapipe (checks without a GPU).
    WgpuCpu,
    /// CUDA (an off-by-default cargo feature).
    Cuda,
}

impl BackendArg {
    pub fn kind(self) -> BackendKind {
        match self {
            BackendArg::Flex => BackendKind::Flex,
            BackendArg::Wgpu => BackendKind::Wgpu,
            BackendArg::WgpuCpu => BackendKind::WgpuCpu,
            BackendArg::Cuda => BackendKind::Cuda,
        }
    }

    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// Threads for a meta-batch's tasks: as asked, else `default` on the CPU backend and 1 elsewhere
    /// (tasks on threads are for CPU cores; a GPU queue takes them one by one).
    pub fn task_threads(self, asked: Option<usize>, default: usize) -> usize {
        match (asked, self) {
            (Some(n), _) => n,
            (None, BackendArg::Flex) => default,
            (None, _) => 1,
        }
    }
}

/// The inference device of a `--backend`.
pub fn backend(b: BackendArg) -> Result<Device> {
    b.kind().device().map_err(anyhow::Error::msg)
}

pub fn load_prepared(path: &Path) -> Result<Prepared> {
    Ok(Prepared::load(path)?)
}

/// Reads a record onto a training (autodiff) device.
pub fn load_record(
    path: &Path,
    device: &Device,
) -> Result<(
    lookalike_core::record::RecordHeader,
    lookalike_core::model::MetaHeac,
)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    lookalike_core::record::from_bytes(&bytes, &device.clone().autodiff())
        .with_context(|| format!("{}", path.display()))
}

/// Which schedules and hyper-parameters a command runs with.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The product's defaults: offline training until validation AUC stops improving, online
    /// fine-tuning until the held-out loss stops improving.
    Product,
    /// The official code's: one offline epoch, two online epochs, no validation.
    Reference,
}

impl Protocol {
    /// Model, offline and online configurations, every default from its config struct.
    pub fn configs(
        self,
        schema: &lookalike_core::schema::Schema,
    ) -> (
        lookalike_core::model::MetaHeacConfig,
        lookalike_core::meta::MetaConfig,
        lookalike_core::finetune::FineTuneConfig,
    ) {
        use lookalike_core::{finetune::FineTuneConfig, meta::MetaConfig, model::MetaHeacConfig};
        let model = MetaHeacConfig::for_schema(schema);
        match self {
            Protocol::Product => (model, MetaConfig::new(), FineTuneConfig::new()),
            Protocol::Reference => (
                model.with_wide(false),
                MetaConfig::reference(),
                FineTuneConfig::reference(),
            ),
        }
    }
}

/// Fine-tuning flags shared by `eval` and `expand`.
#[derive(clap::Args, Clone)]
pub struct FineTuneArgs {
    /// Online schedule: the product's (stop when the held-out loss stops improving) or the reference's
    /// (2 epochs).
    #[arg(long, value_enum, default_value_t = Protocol::Product)]
    protocol: Protocol,
    /// Most fine-tuning epochs [default: 30; reference 2].
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// Fine-tuning Adam learning rate [default: 1e-3, reference].
    #[arg(long)]
    finetune_lr: Option<f64>,
    /// Fine-tuning batch size [default: 512].
    #[arg(long)]
    finetune_batch: Option<usize>,
    /// Fraction of each campaign's rows held out (stratified) to decide when to stop and which wide fit
    /// to keep [default: 0.2; reference 0: no hold-out, every epoch runs].
    #[arg(long)]
    finetune_holdout: Option<f64>,
    /// Inverse L2 strengths (C) tried for the wide part's fit, comma-separated [default: 0.01,0.1,1].
    #[arg(long, value_delimiter = ',')]
    wide_c: Option<Vec<f64>>,
    /// What the held-out rows judge by (the wide fit's strength, when to stop) [default: loss].
    #[arg(long, value_enum)]
    holdout_metric: Option<HoldoutMetricArg>,
    /// Folds of the cross-validation that chooses the wide part's L2 strength [default: 0: the held-out
    /// rows choose].
    #[arg(long)]
    wide_folds: Option<usize>,
    /// Once the held-out rows have chosen the wide fit and the number of steps, refit on all rows
    /// [default: true; reference: no hold-out, nothing to refit].
    #[arg(long)]
    refit: Option<bool>,
    /// Fit the coefficient of the general model's logit in the wide part's regression [default: true].
    #[arg(long)]
    wide_offset_scale: Option<bool>,
    /// Let that coefficient go negative [default: true; `expand` and the web page: false, their
    /// non-seeds are sampled from the pool].
    #[arg(long)]
    wide_negative_offset: Option<bool>,
    /// Fine-tune twice, without the wide fit and with the wide fit alone, and average the two
    /// networks' weights (true), or one run (false), whatever the general model's validation chose
    /// [default: as it chose; one run where the non-seeds are sampled from the pool].
    #[arg(long)]
    soup: Option<bool>,
    /// Start from the prior of the past campaigns most like this one in the wide part, where the
    /// general model's record carries them (`pretrain --similar`); false: never
    /// [default: true; reference: false].
    #[arg(long)]
    similar: Option<bool>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum HoldoutMetricArg {
    /// Mean log loss.
    Loss,
    /// 1 − AUC (the ranking).
    Auc,
}

impl From<HoldoutMetricArg> for lookalike_core::finetune::HoldoutMetric {
    fn from(m: HoldoutMetricArg) -> Self {
        match m {
            HoldoutMetricArg::Loss => Self::Loss,
            HoldoutMetricArg::Auc => Self::Auc,
        }
    }
}

impl FineTuneArgs {
    /// The recipe these flags apply for a general model trained as `training` says (`None`: a fresh
    /// model, which chose none): the one its validation campaigns chose, the best single run where
    /// the two runs' average is not wanted (non-seeds `sampled` from the pool, or `--soup false`),
    /// and none under the reference protocol.
    pub fn recipe(
        &self,
        training: Option<&lookalike_core::record::TrainingInfo>,
        sampled: bool,
    ) -> lookalike_core::finetune::OnlineRecipe {
        match (self.protocol, training) {
            (Protocol::Product, Some(t)) => t.online_recipe_with(
                !sampled && self.soup != Some(false),
                self.similar != Some(false),
            ),
            _ => lookalike_core::finetune::OnlineRecipe::AsConfigured,
        }
    }

    /// The online configuration with `recipe` (from [`Self::recipe`]): the protocol's defaults (for
    /// non-seeds sampled from the pool where `sampled`: see `FineTuneConfig::sampled_negatives`), the
    /// recipe (none where `--soup true` asks for the two runs' average), then the flags given.
    pub fn config(
        &self,
        recipe: lookalike_core::finetune::OnlineRecipe,
        sampled: bool,
    ) -> lookalike_core::finetune::FineTuneConfig {
        let mut c = match self.protocol {
            Protocol::Product => lookalike_core::finetune::FineTuneConfig::new(),
            Protocol::Reference => lookalike_core::finetune::FineTuneConfig::reference(),
        };
        if sampled {
            c = c.sampled_negatives();
        }
        c.soup = self.soup.unwrap_or(c.soup);
        let mut c = recipe.apply(c);
        c.epochs = self.finetune_epochs.unwrap_or(c.epochs);
        c.lr = self.finetune_lr.unwrap_or(c.lr);
        c.batch = self.finetune_batch.unwrap_or(c.batch).max(1);
        c.holdout = self.finetune_holdout.unwrap_or(c.holdout).clamp(0.0, 0.9);
        c.wide_c = self.wide_c.clone().unwrap_or(c.wide_c);
        c.wide_folds = self.wide_folds.unwrap_or(c.wide_folds);
        if let Some(m) = self.holdout_metric {
            c.holdout_metric = m.into();
        }
        c.refit = self.refit.unwrap_or(c.refit);
        c.wide_offset_scale = self.wide_offset_scale.unwrap_or(c.wide_offset_scale);
        c.wide_negative_offset = self.wide_negative_offset.unwrap_or(c.wide_negative_offset);
        c.similar = self.similar.unwrap_or(c.similar);
        c
    }
}
