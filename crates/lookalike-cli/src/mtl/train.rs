//! `lookalike mtl train`: one multi-task model on a data folder, early-stopped on the validation split,
//! the best weights written as a record (atomically, at every improvement), per-task AUC and logloss
//! on the test rows.

use crate::{BackendArg, backend, progress};
use anyhow::{Result, bail};
use lookalike_core::model::CriticCombine;
use lookalike_core::mtl::{AdaptScope, MtlConfig, MtlModelKind, TaskScore};
use lookalike_core::mtl_train::{MtlProgress, MtlTrainConfig, evaluate, record_to_bytes, train};
use lookalike_core::record::parameter_count;
use lookalike_data::mtl::{MtlDataset, Numerical};
use lookalike_data::mtl_synth::load_or_demo;
use std::path::PathBuf;

/// MTReclib's models.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ModelArg {
    SingleTask,
    SharedBottom,
    Omoe,
    Mmoe,
    Ple,
    Aitm,
    Metaheac,
}

impl From<ModelArg> for MtlModelKind {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::SingleTask => MtlModelKind::SingleTask,
            ModelArg::SharedBottom => MtlModelKind::SharedBottom,
            ModelArg::Omoe => MtlModelKind::OMoE,
            ModelArg::Mmoe => MtlModelKind::MMoE,
            ModelArg::Ple => MtlModelKind::Ple,
            ModelArg::Aitm => MtlModelKind::Aitm,
            ModelArg::Metaheac => MtlModelKind::MetaHeac,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CombineArg {
    Sum,
    Mean,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AdaptArg {
    All,
    TaskEmbedding,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum NumericalArg {
    /// Standardised with the training rows' statistics.
    Standardise,
    /// As delivered (MTReclib).
    Raw,
}

/// The data and schedule flags `train` and `bench` share; defaults from the config structs.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// Folder with train.csv and test.csv (MTReclib's processed layout; `lookalike mtl synth` writes
    /// one) [default: the built-in demo, `mtl synth --scale demo --seed 2021` generated in memory].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Share of the training rows held out for early stopping.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    #[arg(long, value_enum, default_value_t = NumericalArg::Standardise)]
    pub numerical: NumericalArg,
    /// At most this many epochs.
    #[arg(long, default_value_t = MtlTrainConfig::new().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = MtlTrainConfig::new().patience)]
    pub patience: usize,
    /// Rows per batch [default: 2048, MTReclib's, halved while an epoch would have fewer than 256
    /// steps].
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, default_value_t = MtlTrainConfig::new().lr)]
    pub lr: f64,
    #[arg(long, default_value_t = MtlTrainConfig::new().weight_decay)]
    pub weight_decay: f32,
    /// Embedding dimension D [default: 128].
    #[arg(long)]
    pub embed_dim: Option<usize>,
    /// Dropout [default: 0.2].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Experts of OMoE and MMoE; PLE: half shared, half per task [default: 8].
    #[arg(long)]
    pub experts: Option<usize>,
    /// Weight of AITM's label constraint; 0 leaves it out, as MTReclib does [default: 0.6].
    #[arg(long)]
    pub aitm_calibration: Option<f64>,
    /// MetaHeac's critic mixture: sum (official) or mean (MTReclib's 1/m scaling) [default: sum].
    #[arg(long, value_enum)]
    pub critic_combine: Option<CombineArg>,
    /// What MetaHeac's inner step adapts: all (official) or task-embedding (MTReclib's effective
    /// behaviour) [default: all].
    #[arg(long, value_enum)]
    pub adapt: Option<AdaptArg>,
    /// MetaHeac's inner learning rate α [default: 2e-4].
    #[arg(long)]
    pub inner_lr: Option<f64>,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
}

impl DataArgs {
    pub fn load(&self, seed: u64) -> Result<MtlDataset> {
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!("--val-fraction must be in [0, 1)");
        }
        if self.batch_size == Some(0) {
            bail!("--batch-size must be at least 1");
        }
        let numerical = match self.numerical {
            NumericalArg::Standardise => Numerical::Standardise,
            NumericalArg::Raw => Numerical::Raw,
        };
        Ok(load_or_demo(
            self.data.as_deref(),
            self.val_fraction,
            seed,
            numerical,
        )?)
    }

    pub fn configs(&self, kind: MtlModelKind, d: &MtlDataset) -> (MtlConfig, MtlTrainConfig) {
        let mut c = MtlConfig::new(kind, d.field_sizes.clone(), d.train.numerical.len());
        c.embed_dim = self.embed_dim.unwrap_or(c.embed_dim);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.num_experts = self.experts.unwrap_or(c.num_experts);
        c.aitm_calibration = self.aitm_calibration.unwrap_or(c.aitm_calibration);
        c.inner_lr = self.inner_lr.unwrap_or(c.inner_lr);
        if let Some(v) = self.critic_combine {
            c.critic_combine = match v {
                CombineArg::Sum => CriticCombine::Sum,
                CombineArg::Mean => CriticCombine::Mean,
            };
        }
        if let Some(v) = self.adapt {
            c.adapt = match v {
                AdaptArg::All => AdaptScope::All,
                AdaptArg::TaskEmbedding => AdaptScope::TaskEmbedding,
            };
        }
        let mut t = MtlTrainConfig::new();
        if let Some(b) = self.batch_size {
            t = t.with_batch_size(b).with_min_steps_per_epoch(0);
        }
        let t = t
            .with_epochs(self.epochs)
            .with_patience(self.patience)
            .with_lr(self.lr)
            .with_weight_decay(self.weight_decay);
        (c, t)
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum)]
    model: ModelArg,
    /// Where the best weights go (a record, rewritten atomically at every improvement).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The run as JSON (epochs, validation and test scores).
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
}

/// A task's AUC to 4 places ("-" when the task had one class only).
pub fn auc(s: &TaskScore) -> String {
    s.auc.map_or("-".into(), |a| format!("{a:.4}"))
}

fn show(s: &TaskScore) -> String {
    format!("AUC {} logloss {:.5}", auc(s), s.logloss)
}

pub fn run(a: Args) -> Result<()> {
    let device = backend(a.data.backend)?;
    let d = a.data.load(a.seed)?;
    let kind: MtlModelKind = a.model.into();
    let (config, tc) = a.data.configs(kind, &d);
    let params = parameter_count(&config.init(lookalike_core::model::Init::Zeros, &device));
    eprintln!(
        "{}: {} train, {} validation, {} test rows; {} parameters; batch {}, Adam {} (weight decay {}), backend {}",
        kind.name(),
        d.train.len(),
        d.valid.len(),
        d.test.len(),
        params,
        tc.batch_for(d.train.len()),
        tc.lr,
        tc.weight_decay,
        a.data.backend.name()
    );
    let bar = progress::steps(0, "train");
    let header = |epoch: usize| {
        serde_json::json!({
            "model": kind.name(),
            "epoch": epoch,
            "seed": a.seed,
            "field_sizes": &d.field_sizes,
            "categorical": &d.train.categorical,
            "numerical": &d.train.numerical,
            "standardised": &d.standardised,
        })
    };
    let mut saved: Option<String> = None;
    let fit = train(
        &config,
        &tc,
        &d.train,
        &d.valid,
        a.seed,
        &device,
        &mut |p| match p {
            MtlProgress::Batch(epoch, i, n, loss) => {
                bar.set_length(n as u64);
                bar.set_position(i as u64);
                bar.set_prefix(format!("epoch {epoch} loss {loss:.4}"));
            }
            MtlProgress::Epoch(r) => bar.suspend(|| {
                let tasks: Vec<String> = r.valid.iter().map(show).collect();
                eprintln!(
                    "  epoch {}: train loss {:.5}, validation CTR {} | CTCVR {}{} ({:.0} rows/s)",
                    r.epoch,
                    r.train_loss,
                    tasks[0],
                    tasks.get(1).map_or("-", |s| s.as_str()),
                    if r.best { " (best)" } else { "" },
                    r.rows_per_second
                )
            }),
            MtlProgress::Best(epoch, model) => {
                if let Some(out) = &a.out {
                    let result = record_to_bytes(model, &config, header(epoch))
                        .map_err(anyhow::Error::msg)
                        .and_then(|b| {
                            Ok(lookalike_data::atomic::write_atomic(out, |w| {
                                w.write_all(&b)
                            })?)
                        });
                    if let Err(e) = result {
                        saved = Some(format!("{}: {e:#}", out.display()));
                    }
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = saved {
        bail!("writing the best weights: {e}");
    }
    let test = evaluate(&fit.model, &d.test, &d.field_sizes, tc.eval_batch)?;
    println!(
        "| model | CTR AUC | CTR logloss | CTCVR AUC | CTCVR logloss |\n|---|---|---|---|---|"
    );
    let cell = |s: &TaskScore| format!("{} | {:.5}", auc(s), s.logloss);
    println!(
        "| {} | {} | {} |",
        kind.name(),
        cell(&test[0]),
        test.get(1).map_or("- | -".into(), cell)
    );
    println!(
        "kept epoch {} of {}; trained in {:.1} s ({:.0} training rows/s)",
        fit.best_epoch,
        fit.epochs.len(),
        fit.seconds,
        fit.rows_per_second
    );
    if let Some(out) = &a.out {
        println!(
            "wrote {} (the weights of epoch {})",
            out.display(),
            fit.best_epoch
        );
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "model": kind.name(),
            "seed": a.seed,
            "config": &config,
            "train": &tc,
            "epochs": &fit.epochs,
            "best_epoch": fit.best_epoch,
            "seconds": fit.seconds,
            "rows_per_second": fit.rows_per_second,
            "test": { "ctr": test[0], "ctcvr": test.get(1) },
        });
        crate::write_json(path, &v)?;
    }
    Ok(())
}
