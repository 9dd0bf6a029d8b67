//! `lookalike pretrain`: the offline stage.

use crate::{backend, load_prepared, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::data::Role;
use lookalike_core::meta::{MetaConfig, MetaGrad, MetaTrainer, TaskSampling};
use lookalike_core::model::{CriticCombine, GateContext, Init, MetaHeacConfig};
use lookalike_core::record::{self, Precision, RecordHeader, TrainingInfo};
use std::path::PathBuf;
use std::time::Instant;

/// Hyper-parameters left out take the reference defaults of `MetaHeacConfig` and `MetaConfig`.
#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (from `lookalike prepare`).
    #[arg(long)]
    data: PathBuf,
    /// Record to write.
    #[arg(long)]
    out: PathBuf,
    /// Meta-gradient: first-order MAML, exact second-order MAML, or none (plain training, "w/o Meta").
    #[arg(long, default_value = "first-order", value_parser = ["first-order", "second-order", "none"])]
    meta: String,
    /// Experts n [default: 8; 1 = "w/o HE"].
    #[arg(long)]
    experts: Option<usize>,
    /// Critics m [default: 5; 1 = "w/o HC"].
    #[arg(long)]
    critics: Option<usize>,
    /// Epochs; an epoch is ceil(training rows / 512) iterations [default: 1].
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many iterations (for quick runs and benchmarks).
    #[arg(long)]
    max_iterations: Option<usize>,
    /// Stored weight precision.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    precision: String,
    /// flex (CPU), wgpu, wgpu-cpu (software Vulkan such as lavapipe) or cuda.
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Embedding dimension D [default: 64].
    #[arg(long)]
    embed_dim: Option<usize>,
    /// How critics combine: sum (official) or mean (MTReclib, divides by m).
    #[arg(long, value_parser = ["sum", "mean"])]
    critic_combine: Option<String>,
    /// What the gates see: field-mean (per-sample mean of user-field embeddings, official) or none.
    #[arg(long, value_parser = ["field-mean", "none"])]
    gate_context: Option<String>,
    /// Task sampling: proportional to rows (reference), sqrt, or uniform.
    #[arg(long, value_parser = ["proportional", "sqrt", "uniform"])]
    task_sampling: Option<String>,
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
}

pub fn meta_config(a: &Args) -> MetaConfig {
    let mut m = MetaConfig::new();
    m.meta_grad = match a.meta.as_str() {
        "second-order" => MetaGrad::SecondOrder,
        "none" => MetaGrad::None,
        _ => MetaGrad::FirstOrder,
    };
    if let Some(v) = &a.task_sampling {
        m.task_sampling = match v.as_str() {
            "sqrt" => TaskSampling::Sqrt,
            "uniform" => TaskSampling::Uniform,
            _ => TaskSampling::Proportional,
        };
    }
    m.epochs = a.epochs.unwrap_or(m.epochs);
    m.task_count = a.task_count.unwrap_or(m.task_count);
    m.support_size = a.support.unwrap_or(m.support_size);
    m.query_size = a.query.unwrap_or(m.query_size);
    m.disjoint_support_query = a.disjoint;
    m.inner_lr = a.inner_lr.unwrap_or(m.inner_lr);
    m.inner_steps = a.inner_steps.unwrap_or(m.inner_steps);
    m.outer_lr = a.outer_lr.unwrap_or(m.outer_lr);
    m
}

pub fn run(a: Args) -> Result<()> {
    let data = load_prepared(&a.data)?;
    let device = backend(&a.backend)?;
    let precision: Precision = a.precision.parse().map_err(anyhow::Error::msg)?;
    let mut mc = MetaHeacConfig::new(data.schema.table_sizes());
    mc.num_experts = a.experts.unwrap_or(mc.num_experts);
    mc.num_critics = a.critics.unwrap_or(mc.num_critics);
    mc.embed_dim = a.embed_dim.unwrap_or(mc.embed_dim);
    if let Some(c) = &a.critic_combine {
        mc.critic_combine = if c == "mean" {
            CriticCombine::Mean
        } else {
            CriticCombine::Sum
        };
    }
    if let Some(g) = &a.gate_context {
        mc.gate_context = if g == "none" {
            GateContext::None
        } else {
            GateContext::FieldMean
        };
    }
    if mc.num_experts == 0 || mc.num_critics == 0 || mc.embed_dim == 0 {
        bail!("--experts, --critics and --embed-dim must be at least 1");
    }
    let meta = meta_config(&a);
    if meta.task_count == 0 || meta.support_size == 0 || meta.query_size == 0 || meta.epochs == 0 {
        bail!("--task-count, --support, --query and --epochs must be at least 1");
    }
    let train = data.with_role(Role::Train);
    if train.iter().all(|c| c.stage1.is_empty()) {
        bail!(
            "{}: no training campaign has stage-1 rows",
            a.data.display()
        );
    }
    let model = mc
        .init(Init::Seeded(a.seed), &device.clone().autodiff())
        .with_multi_lens(data.schema.multi_lens());
    let parameters = record::parameter_count(&model);
    let mut trainer = MetaTrainer::new(
        model,
        meta.clone(),
        &data.users,
        &train,
        a.seed.wrapping_add(1),
    );
    let total = a.max_iterations.map_or(trainer.total_iterations(), |m| {
        m.min(trainer.total_iterations())
    });
    eprintln!(
        "meta-training ({:?}) on {} campaigns, {} rows: {} iterations, {} parameters, backend {}",
        meta.meta_grad,
        train.len(),
        trainer.training_rows(),
        total,
        parameters,
        a.backend
    );
    let bar = progress::steps(total as u64, "pretrain");
    let start = Instant::now();
    let (mut rows, mut recent) = (0usize, Vec::new());
    let log_every = (total / 10).max(1);
    for i in 0..total {
        let s = trainer.step();
        rows += s.rows;
        let loss = if s.query_loss.is_nan() {
            s.support_loss
        } else {
            s.query_loss
        };
        if !loss.is_finite() {
            bail!(
                "training diverged at iteration {} (loss {loss}); try a smaller --outer-lr",
                i + 1
            );
        }
        recent.push(loss);
        bar.set_prefix(format!("loss {loss:.4}"));
        bar.inc(1);
        if !bar.is_hidden() {
            continue;
        }
        if (i + 1) % log_every == 0 || i + 1 == total {
            let tail = &recent[recent.len().saturating_sub(log_every)..];
            eprintln!(
                "  iteration {}/{}: loss {:.4} (mean of last {}), {:.0} rows/s",
                i + 1,
                total,
                tail.iter().sum::<f32>() / tail.len() as f32,
                tail.len(),
                rows as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let tail = &recent[recent.len().saturating_sub(50)..];
    let final_loss = (!tail.is_empty()).then(|| tail.iter().sum::<f32>() / tail.len() as f32);
    let header = RecordHeader {
        model: mc,
        schema: data.schema.clone(),
        precision,
        training: TrainingInfo {
            meta: Some(meta),
            seed: a.seed,
            iterations: total,
            train_campaigns: train.len(),
            train_rows: trainer.training_rows(),
            seconds,
            rows_per_second: rows as f64 / seconds.max(1e-9),
            final_loss,
            backend: a.backend.clone(),
            data: a
                .data
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            created_by: format!("lookalike {}", env!("CARGO_PKG_VERSION")),
        },
        parameters,
    };
    let bytes = record::to_bytes(trainer.model(), &header)?;
    lookalike_data::prepare::write_atomic(&a.out, |w| w.write_all(&bytes))
        .with_context(|| "writing the record")?;
    println!(
        "trained {} iterations in {:.1} s: {:.0} rows/s, {:.2} iterations/s, final loss {}",
        total,
        seconds,
        header.training.rows_per_second,
        total as f64 / seconds.max(1e-9),
        final_loss.map_or("-".into(), |l| format!("{l:.4}"))
    );
    println!(
        "wrote {} ({:.2} MB, {:?})",
        a.out.display(),
        bytes.len() as f64 / 1e6,
        precision
    );
    Ok(())
}
