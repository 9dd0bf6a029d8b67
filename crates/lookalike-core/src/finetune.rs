//! Online stage: adapt the general model to one campaign (its seeds and non-seeds), then score candidates.

use crate::data::{Batch, Row, UserTable};
use crate::model::{Inputs, MetaHeac, bce};
use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

#[derive(Config, Debug)]
pub struct FineTuneConfig {
    /// Adam learning rate (reference `local_test_lr`).
    #[config(default = 1e-3)]
    pub lr: f64,
    #[config(default = 2)]
    pub epochs: usize,
    #[config(default = 512)]
    pub batch: usize,
    #[config(default = 1e-8)]
    pub adam_epsilon: f32,
}

/// Step-wise fine-tuning (a fresh Adam per campaign, reshuffled each epoch), so a caller can show
/// progress or yield between steps.
pub struct FineTuner<'a> {
    model: Option<MetaHeac>,
    optim: ModuleOptimizer,
    config: FineTuneConfig,
    users: &'a UserTable,
    ad: &'a [u32],
    rows: Vec<Row>,
    rng: StdRng,
    cursor: usize,
    pub epoch: usize,
    pub step: usize,
}

impl<'a> FineTuner<'a> {
    /// `model` must live on an autodiff device.
    pub fn new(
        model: MetaHeac,
        config: FineTuneConfig,
        users: &'a UserTable,
        ad: &'a [u32],
        rows: &[Row],
        seed: u64,
    ) -> Self {
        let optim = AdamConfig::new().with_epsilon(config.adam_epsilon).init();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rows = rows.to_vec();
        rows.shuffle(&mut rng);
        FineTuner {
            model: Some(model),
            optim,
            config,
            users,
            ad,
            rows,
            rng,
            cursor: 0,
            epoch: 0,
            step: 0,
        }
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.rows.len().div_ceil(self.config.batch.max(1))
    }

    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.config.epochs
    }

    pub fn is_done(&self) -> bool {
        self.epoch >= self.config.epochs || self.rows.is_empty()
    }

    pub fn model(&self) -> &MetaHeac {
        self.model.as_ref().expect("model present between steps")
    }

    /// One mini-batch step; returns its loss, or `None` when all epochs are done.
    pub fn step(&mut self) -> Option<f32> {
        self.step_lazy().map(|loss| loss.into_scalar::<f32>())
    }

    /// One mini-batch step that reads nothing back: returns the (detached) loss tensor, so a browser
    /// on WebGPU can read it asynchronously, or only every few steps.
    pub fn step_lazy(&mut self) -> Option<Tensor<1>> {
        if self.is_done() {
            return None;
        }
        let end = (self.cursor + self.config.batch).min(self.rows.len());
        let model = self.model.take().expect("model present between steps");
        let batch = Batch::gather(
            self.users,
            &model.multi_lens,
            self.ad,
            &self.rows[self.cursor..end],
        );
        let x = Inputs::new(&batch, &model.device());
        let loss = bce(model.forward(&x).prob, x.labels.clone());
        let value = loss.clone().detach();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.config.lr, model, grads));
        self.step += 1;
        self.cursor = end;
        if self.cursor >= self.rows.len() {
            self.cursor = 0;
            self.epoch += 1;
            self.rows.shuffle(&mut self.rng);
        }
        Some(value)
    }

    /// Changes the learning rate of the next steps (the optimizer state is kept).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Runs the remaining steps; `on_step(step, total, loss)` after each.
    pub fn run(mut self, on_step: &mut dyn FnMut(usize, usize, f32)) -> MetaHeac {
        let total = self.total_steps();
        while let Some(loss) = self.step() {
            on_step(self.step, total, loss);
        }
        self.into_model()
    }

    pub fn into_model(self) -> MetaHeac {
        self.model.expect("model present between steps")
    }
}

/// The scores of one chunk of rows, not yet read back.
fn score_tensor(model: &MetaHeac, users: &UserTable, ad: &[u32], rows: &[Row]) -> Tensor<1> {
    let b = Batch::gather(users, &model.multi_lens, ad, rows);
    model.forward(&Inputs::new(&b, &model.device())).prob
}

fn f32s(data: TensorData) -> Vec<f32> {
    data.try_into_vec_as::<f32>().expect("f32 data")
}

/// Scores of `rows` (labels ignored) for one campaign, in row order, without autodiff.
pub fn predict(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> Vec<f32> {
    let model = model.valid();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch.max(1)) {
        out.extend(f32s(score_tensor(&model, users, ad, chunk).into_data()));
    }
    out
}

/// [`predict`] with asynchronous read-back (required on WebGPU in a browser).
pub async fn predict_async(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> Result<Vec<f32>, String> {
    let model = model.valid();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch.max(1)) {
        let data = score_tensor(&model, users, ad, chunk)
            .into_data_async()
            .await
            .map_err(|e| format!("reading scores back: {e:?}"))?;
        out.extend(f32s(data));
    }
    Ok(out)
}

/// Mean expert-gate and critic-gate weights over some rows of a campaign.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateWeights {
    pub expert: Vec<f32>,
    pub critic: Vec<f32>,
}

/// Expert and critic gates averaged over the rows, as one `[E + C]` tensor.
fn gate_tensor(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
) -> (Tensor<1>, usize) {
    let model = model.valid();
    let b = Batch::gather(users, &model.multi_lens, ad, rows);
    let out = model.forward(&Inputs::new(&b, &model.device()));
    let experts = out.expert_gate.dims()[1];
    let both = Tensor::cat(vec![out.expert_gate, out.critic_gate], 1).mean_dim(0);
    (both.flatten::<1>(0, 1), experts)
}

fn split_gates(v: Vec<f32>, experts: usize) -> GateWeights {
    GateWeights {
        expert: v[..experts].to_vec(),
        critic: v[experts..].to_vec(),
    }
}

pub fn gate_weights(model: &MetaHeac, users: &UserTable, ad: &[u32], rows: &[Row]) -> GateWeights {
    let (t, experts) = gate_tensor(model, users, ad, rows);
    split_gates(f32s(t.into_data()), experts)
}

/// [`gate_weights`] with asynchronous read-back.
pub async fn gate_weights_async(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
) -> Result<GateWeights, String> {
    let (t, experts) = gate_tensor(model, users, ad, rows);
    let data = t
        .into_data_async()
        .await
        .map_err(|e| format!("reading gate weights back: {e:?}"))?;
    Ok(split_gates(f32s(data), experts))
}
