//! Training the multi-task models as MTReclib does — shuffled batches of 2048, the mean of the tasks'
//! BCE, Adam (lr 1e-3, L2 weight decay 1e-6), one step per batch — with two of its choices fixed:
//! early stopping (patience 2 epochs on the mean AUC over tasks) reads a validation split, not the
//! test set, and every run is seeded (the backend's random stream too, for dropout).
//!
//! MetaHeac is meta-trained as MTReclib does it: each batch is a pseudo-task whose first half is the
//! support set and second half the query set, two batches make a meta-batch, the inner step (α, one
//! SGD step on the support loss, first-order) adapts every parameter or only the task embedding, and
//! Adam steps on the mean query loss at the adapted weights. The fast weights are values computed
//! for one meta-batch and dropped with it, so none leak into evaluation (MTReclib's do).

use crate::finite::NonFinite;
use crate::grads;
use crate::model::Init;
use crate::mtl::{
    AdaptScope, MtlConfig, MtlInputs, MtlModel, MtlModelKind, MtlTable, TaskScore, offsets,
    task_score,
};
use burn::config::Config;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::time::Instant;

#[derive(Config, Debug)]
pub struct MtlTrainConfig {
    /// Rows per batch (MTReclib: 2048), halved while an epoch would have fewer than
    /// `min_steps_per_epoch` steps (see [`Self::batch_for`]).
    #[config(default = 2048)]
    pub batch_size: usize,
    /// MTReclib's 2048 assumes AliExpress's millions of rows; on 72,000 rows it makes 35 steps an
    /// epoch, and early stopping ends the run while the model is still learning the base rates (the
    /// built-in demo, Shared-Bottom: test CTR AUC 0.56 at 2048, 0.63 at 256). 0 keeps `batch_size`.
    #[config(default = 256)]
    pub min_steps_per_epoch: usize,
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Adam's L2 penalty (PyTorch's `weight_decay`).
    #[config(default = 1e-6)]
    pub weight_decay: f32,
    /// At most this many epochs.
    #[config(default = 50)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation mean AUC (MTReclib: 2).
    #[config(default = 2)]
    pub patience: usize,
    /// Rows per forward pass when scoring.
    #[config(default = 8192)]
    pub eval_batch: usize,
}

impl MtlTrainConfig {
    /// The batch for `rows` training rows: `batch_size`, halved (down to 64 at least) while an epoch
    /// would have fewer than `min_steps_per_epoch` steps.
    pub fn batch_for(&self, rows: usize) -> usize {
        let mut b = self.batch_size.max(1);
        while self.min_steps_per_epoch > 0 && b > 64 && rows / b < self.min_steps_per_epoch {
            b /= 2;
        }
        b
    }
}

/// One epoch as it went.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    /// Per task (CTR, CTCVR) on the validation rows.
    pub valid: Vec<TaskScore>,
    pub rows_per_second: f64,
    pub best: bool,
}

/// What [`train`] reports as it goes.
pub enum MtlProgress<'a> {
    /// A batch: (epoch, batch index, batches per epoch, loss).
    Batch(usize, usize, usize, f32),
    Epoch(&'a EpochReport),
    /// The weights just validated best, with their epoch (to save as the run's checkpoint).
    Best(usize, &'a MtlModel),
}

/// A trained model (the best validated weights, on the inference device) and its history.
pub struct MtlFit {
    pub model: MtlModel,
    pub epochs: Vec<EpochReport>,
    pub best_epoch: usize,
    pub seconds: f64,
    /// Training rows read per second over the whole run (forward and backward).
    pub rows_per_second: f64,
}

/// The mean over tasks of the AUCs that exist (a task without both labels has none).
pub fn mean_auc(scores: &[TaskScore]) -> f64 {
    let m = crate::schedule::mean_of(&scores.iter().map(|s| s.auc).collect::<Vec<_>>());
    if m.is_nan() { 0.5 } else { m }
}

/// Each task's predicted probabilities for every row of `t`, scored in passes of `batch` rows.
pub fn predict(
    model: &MtlModel,
    t: &MtlTable,
    field_sizes: &[usize],
    batch: usize,
) -> Vec<Vec<f32>> {
    let model = model.valid();
    let device = model.device();
    let offs = offsets(field_sizes);
    let mut out = vec![Vec::with_capacity(t.len()); model.tasks];
    let rows: Vec<usize> = (0..t.len()).collect();
    for chunk in rows.chunks(batch.max(1)) {
        let x = MtlInputs::new(t, chunk, &offs, model.tasks, &device);
        for (k, o) in model.forward(&x).tasks.iter().enumerate() {
            let data: TensorData = o.prob().into_data();
            out[k].extend(data.try_into_vec_as::<f32>().expect("f32 data"));
        }
    }
    out
}

/// Per-task AUC and logloss of `model` on `t`.
pub fn evaluate(
    model: &MtlModel,
    t: &MtlTable,
    field_sizes: &[usize],
    batch: usize,
) -> Result<Vec<TaskScore>, NonFinite> {
    let p = predict(model, t, field_sizes, batch);
    p.iter()
        .enumerate()
        .map(|(k, p)| {
            crate::finite::check(p, "a multi-task prediction")?;
            Ok(task_score(t.labels(k), p))
        })
        .collect()
}

/// Trains `config`'s model on `train`, early-stopping on `valid`; returns the best epoch's weights.
pub fn train(
    config: &MtlConfig,
    tc: &MtlTrainConfig,
    train: &MtlTable,
    valid: &MtlTable,
    seed: u64,
    device: &Device,
    on_progress: &mut dyn FnMut(MtlProgress),
) -> Result<MtlFit, NonFinite> {
    let start = Instant::now();
    let ad = device.clone().autodiff();
    // Dropout draws from the backend's stream: seeded, so a run repeats.
    ad.seed(seed);
    let mut model = config.init(Init::Seeded(seed), &ad);
    let mut optim = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(tc.weight_decay)))
        .init();
    let offs = offsets(&config.field_sizes);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut epochs = Vec::new();
    let mut best: Option<(f64, usize, MtlModel)> = None;
    let mut since_best = 0;
    let mut rows_read = 0usize;
    let meta = config.kind == MtlModelKind::MetaHeac;
    let batch = tc.batch_for(train.len());
    let per_epoch = train
        .len()
        .div_ceil(batch)
        .div_ceil(if meta { 2 } else { 1 });
    for epoch in 1..=tc.epochs.max(1) {
        let t0 = Instant::now();
        order.shuffle(&mut StdRng::seed_from_u64(
            seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9),
        ));
        let mut total = 0.0;
        let mut batches = 0;
        // BatchNorm needs two rows to estimate a variance (MetaHeac: in each half of a batch).
        let least = if meta { 4 } else { 2 };
        let chunks: Vec<&[usize]> = order.chunks(batch).filter(|c| c.len() >= least).collect();
        let per_step = if meta { 2 } else { 1 };
        for (i, step) in chunks.chunks(per_step).enumerate() {
            let loss = if meta {
                meta_loss(&model, config, train, &offs, step, &ad)
            } else {
                model.loss(&MtlInputs::new(train, step[0], &offs, config.tasks, &ad))
            };
            let chunk_rows: usize = step.iter().map(|c| c.len()).sum();
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                return Err(NonFinite::new(
                    format!("the training loss at epoch {epoch}, batch {}", i + 1),
                    value,
                ));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(tc.lr, model, grads);
            total += value as f64;
            batches += 1;
            rows_read += chunk_rows;
            on_progress(MtlProgress::Batch(epoch, i + 1, per_epoch, value));
        }
        let seconds = t0.elapsed().as_secs_f64();
        let scores = evaluate(&model, valid, &config.field_sizes, tc.eval_batch)?;
        let a = mean_auc(&scores);
        let better = best.as_ref().is_none_or(|(b, _, _)| a > *b);
        let report = EpochReport {
            epoch,
            train_loss: total / batches.max(1) as f64,
            valid: scores,
            rows_per_second: train.len() as f64 / seconds.max(1e-9),
            best: better,
        };
        on_progress(MtlProgress::Epoch(&report));
        epochs.push(report);
        if better {
            on_progress(MtlProgress::Best(epoch, &model));
            // `valid()` copies BatchNorm's running statistics; a `clone()` would share them with
            // the model that trains on, and the kept weights would drift.
            best = Some((a, epoch, model.valid()));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= tc.patience.max(1) {
                break;
            }
        }
    }
    let (_, best_epoch, model) = best.expect("at least one epoch");
    let seconds = start.elapsed().as_secs_f64();
    Ok(MtlFit {
        model,
        epochs,
        best_epoch,
        seconds,
        rows_per_second: rows_read as f64 / seconds.max(1e-9),
    })
}

/// MetaHeac's meta-objective on one meta-batch: for each batch (a pseudo-task), one first-order SGD
/// step on its first half (the support set) from θ, then the loss of its second half (the query set)
/// at the adapted weights; the mean over the pseudo-tasks, differentiable in θ.
fn meta_loss(
    model: &MtlModel,
    config: &MtlConfig,
    train: &MtlTable,
    offs: &[u32],
    batches: &[&[usize]],
    device: &Device,
) -> Tensor<1> {
    let n = batches.len() as f32;
    let alpha = config.inner_lr as f32;
    let mut total: Option<Tensor<1>> = None;
    for rows in batches {
        let (support, query) = rows.split_at(rows.len() / 2);
        let support = MtlInputs::new(train, support, offs, config.tasks, device);
        let query = MtlInputs::new(train, query, offs, config.tasks, device);
        // The inner gradient is taken at a detached copy of θ and enters θ' as a constant.
        let leaf = grads::releaf(model.clone());
        let mut g = leaf.loss(&support).backward();
        let g = match (config.adapt, leaf.task_embedding_id()) {
            (AdaptScope::TaskEmbedding, Some(id)) => {
                GradientsParams::from_params(&mut g, &leaf, &[id])
            }
            _ => GradientsParams::from_module(&mut g, &leaf),
        };
        let fast = grads::shift(model.clone(), &g, -alpha, false);
        let lq = fast.loss(&query).div_scalar(n);
        total = Some(match total {
            Some(t) => t + lq,
            None => lq,
        });
    }
    total.expect("at least one pseudo-task")
}

const MAGIC: &[u8; 8] = b"LKMTLREC";
const VERSION: u32 = 1;

/// A multi-task model's record: a JSON header (its `MtlConfig` under `"config"`, and whatever the
/// caller adds) and its weights (burnpack, f32).
pub fn record_to_bytes(
    model: &MtlModel,
    config: &MtlConfig,
    mut header: serde_json::Value,
) -> Result<Vec<u8>, String> {
    header["config"] = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    let weights = crate::record::weights_to_bytes(model, crate::record::Precision::F32)
        .map_err(|e| e.to_string())?;
    let mut out = crate::frame::write_head(MAGIC, VERSION, &json, weights.len() + 8);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(&weights);
    Ok(out)
}

/// Reads a record written by [`record_to_bytes`] onto `device`.
pub fn record_from_bytes(
    bytes: &[u8],
    device: &Device,
) -> Result<(serde_json::Value, MtlModel), String> {
    let (_, json, mut rest) = crate::frame::read_head(bytes, MAGIC, VERSION..=VERSION)
        .map_err(|e| format!("not a multi-task record: {e:?}"))?;
    let header: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let config: MtlConfig =
        serde_json::from_value(header["config"].clone()).map_err(|e| e.to_string())?;
    let n = crate::frame::u64_at(&mut rest, "weights length").map_err(|e| format!("{e:?}"))?;
    let weights = crate::frame::take(&mut rest, n, "weights").map_err(|e| format!("{e:?}"))?;
    let model = crate::record::load_weights(config.init(Init::Zeros, device), weights)
        .map_err(|e| e.to_string())?;
    Ok((header, model))
}
