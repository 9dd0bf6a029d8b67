//! MetaHeac: feature embeddings, hybrid experts mixed by a task-driven gate, hybrid critics mixed by a
//! second gate (Zhu et al., KDD 2021, Eq. 9):
//!
//! ```text
//!   x  = [e_1 ‖ … ‖ e_F]                         user-field embeddings (multi-valued: masked mean)
//!   t  = [mean_f e_f ‖ a_1 ‖ … ‖ a_A]             task representation (per sample, as the official code)
//!   g  = softmax(G_e(t)),  h = Σ_k g_k E_k(x)     hybrid experts
//!   c  = softmax(G_c(t)),  ŷ = Σ_j c_j σ(T_j(h))          hybrid critics
//!   ŷ' = σ(s · logit ŷ + w(x))                            optional wide part
//! ```
//!
//! `w(x)` is the wide part (off in the reference): one scalar weight per user token, summed over the
//! user's tokens (a logistic regression on the one-hot tokens, as in Wide & Deep — the official code's
//! class is called `WideAndDeepModel`), zero at initialisation, on top of the critic mixture's logit
//! scaled by `s` (1 at initialisation). It lets fine-tuning learn campaign-specific token effects
//! directly, and makes the online wide fit exact: a logistic regression on the tokens with the general
//! model's logit as offset, its coefficient fitted too, is the model with `s` and `w` set to the fit.
//!
//! The loss is computed from logits through the mixture, log ŷ = logsumexp_j(log c_j + log σ(z_j)), so it
//! stays finite (with a finite gradient) where f32 probabilities saturate to exactly 0 or 1.

use crate::data::Batch;
use crate::schema::TableSizes;
use burn::config::Config;
use burn::module::{Module, Param, ParamId};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{log_sigmoid, log_softmax, relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How the critic outputs are combined.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum CriticCombine {
    /// Σ_j c_j σ(T_j(h)) (official MetaHeac code).
    Sum,
    /// (1/m) Σ_j c_j σ(T_j(h)) (MTReclib's port; predictions never exceed 1/m).
    Mean,
}

/// What the gates see of the user besides the ad fields.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GateContext {
    /// The per-sample mean of the user-field embeddings (official code, see MetaHeac issue #5).
    FieldMean,
    /// Ad fields only: the gates depend on the campaign alone.
    None,
}

#[derive(Config, Debug)]
pub struct MetaHeacConfig {
    /// Embedding table sizes, from the data schema.
    pub tables: TableSizes,
    /// Embedding dimension D.
    #[config(default = 64)]
    pub embed_dim: usize,
    /// Hidden sizes of each expert MLP (ReLU after every layer); the last is the expert output.
    #[config(default = "vec![64, 64]")]
    pub expert_dims: Vec<usize>,
    /// Number of experts n (1 = the "w/o HE" ablation).
    #[config(default = 8)]
    pub num_experts: usize,
    /// Number of critics m (1 = the "w/o HC" ablation).
    #[config(default = 5)]
    pub num_critics: usize,
    /// Hidden size of both gates' two-layer MLP.
    #[config(default = 64)]
    pub gate_hidden: usize,
    #[config(default = "CriticCombine::Sum")]
    pub critic_combine: CriticCombine,
    #[config(default = "GateContext::FieldMean")]
    pub gate_context: GateContext,
    /// Max length of each multi-valued user field (how the multi-valued slots are laid out), from the
    /// schema (`Schema::multi_lens`).
    #[config(default = "Vec::new()")]
    pub multi_lens: Vec<usize>,
    /// Standard deviation of the N(0, σ²) embedding initialisation (reference: 1, PyTorch's default).
    #[config(default = 1.0)]
    pub embed_init_std: f64,
    /// The wide part w(x): a zero-initialised weight per user token added to the logit of the critic
    /// mixture, itself scaled by a learned `s`
    /// (not in the reference code).
    #[config(default = true)]
    pub wide: bool,
}

/// Two-layer MLP with softmax output: a task-driven gate.
#[derive(Module, Debug)]
pub struct Gate {
    pub hidden: Linear,
    pub out: Linear,
}

impl Gate {
    /// log of the gate weights, shape `[B, k]`.
    pub fn log_weights(&self, t: Tensor<2>) -> Tensor<2> {
        log_softmax(self.out.forward(relu(self.hidden.forward(t))), 1)
    }

    /// The gate weights (softmax), shape `[B, k]`.
    pub fn forward(&self, t: Tensor<2>) -> Tensor<2> {
        self.log_weights(t).exp()
    }
}

/// One expert: an MLP with ReLU after each layer.
#[derive(Module, Debug)]
pub struct Expert {
    pub layers: Vec<Linear>,
}

impl Expert {
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for l in &self.layers {
            x = relu(l.forward(x));
        }
        x
    }
}

/// Every expert's output E_k(x), shape `[B, n, d]`, one expert at a time.
pub fn experts_one_by_one(experts: &[Expert], x: Tensor<2>) -> Tensor<3> {
    Tensor::stack(experts.iter().map(|e| e.forward(x.clone())).collect(), 1)
}

/// Every expert's output E_k(x), shape `[B, n, d]`: the same sums as `n` separate [`Expert::forward`]s,
/// run as one matrix product per layer, so the input is packed once for all experts and each product is
/// `n` times wider (the first layer over `x` with the experts' weights side by side, `[B, in] × [in,
/// n·h]`; the later ones batched over experts, `[n, B, h] × [n, h, h']`).
pub fn experts_forward(experts: &[Expert], x: Tensor<2>) -> Tensor<3> {
    let n = experts.len();
    let depth = experts[0].layers.len();
    if n == 1 || depth == 0 {
        // Nothing to put side by side.
        return experts_one_by_one(experts, x);
    }
    let [b, _] = x.dims();
    let layer = |i: usize| experts.iter().map(move |e| &e.layers[i]);
    let biases = |i: usize| -> Option<Vec<Tensor<1>>> {
        layer(i).map(|l| l.bias.as_ref().map(|b| b.val())).collect()
    };
    // [B, in] × [in, n·h] → [B, n, h] → [n, B, h].
    let w = Tensor::cat(layer(0).map(|l| l.weight.val()).collect(), 1);
    let mut h = x.matmul(w);
    if let Some(bs) = biases(0) {
        h = h + Tensor::cat(bs, 0).unsqueeze_dim::<2>(0);
    }
    let width = h.dims()[1] / n;
    let h: Tensor<3> = relu(h).reshape([b, n, width]).swap_dims(0, 1);
    experts_later_layers(experts, h).swap_dims(0, 1)
}

/// Every expert's layers after the first, batched over experts: `[n, B, h]` (the first layer's
/// activations, expert-major) → `[n, B, d]`.
pub(crate) fn experts_later_layers(experts: &[Expert], mut h: Tensor<3>) -> Tensor<3> {
    for i in 1..experts[0].layers.len() {
        let layer = || experts.iter().map(|e| &e.layers[i]);
        // [n, B, h] × [n, h, h'] (+ [n, 1, h']).
        h = h.matmul(Tensor::stack(layer().map(|l| l.weight.val()).collect(), 0));
        let biases: Option<Vec<Tensor<1>>> =
            layer().map(|l| l.bias.as_ref().map(|b| b.val())).collect();
        if let Some(bs) = biases {
            h = h + Tensor::stack::<2>(bs, 0).unsqueeze_dim::<3>(1);
        }
        h = relu(h);
    }
    h
}

#[derive(Module, Debug)]
pub struct MetaHeac {
    pub user_single: Vec<Embedding>,
    pub user_multi: Vec<Embedding>,
    pub ad: Vec<Embedding>,
    pub experts: Vec<Expert>,
    pub expert_gate: Gate,
    pub critics: Vec<Linear>,
    pub critic_gate: Gate,
    /// One `[vocabulary, 1]` table per user field (single-valued, then multi-valued); empty without
    /// the wide part.
    pub wide: Vec<Embedding>,
    /// `s`, the scale of the critic mixture's logit under the wide part (`None` without it).
    pub wide_scale: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub critic_combine: CriticCombine,
    #[module(skip)]
    pub gate_context: GateContext,
    #[module(skip)]
    pub multi_lens: Vec<usize>,
}

/// Model output with the gate weights (for reports and the web app).
#[derive(Debug, Clone)]
pub struct Output {
    /// ŷ, shape `[B]`.
    pub prob: Tensor<1>,
    /// log ŷ and log(1 − ŷ), shape `[B]`, computed from logits (finite where ŷ rounds to 0 or 1).
    pub log_prob: Tensor<1>,
    pub log_not_prob: Tensor<1>,
    /// g, shape `[B, n]`.
    pub expert_gate: Tensor<2>,
    /// c, shape `[B, m]`.
    pub critic_gate: Tensor<2>,
}

/// A [`Batch`] uploaded to a device.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub single: Tensor<2, Int>,
    pub multi: Tensor<2, Int>,
    pub mask: Tensor<3>,
    /// The mask without repeated tokens (the wide part's).
    pub distinct: Tensor<3>,
    pub inv_len: Tensor<2>,
    pub ad: Tensor<2, Int>,
    pub labels: Tensor<1>,
}

impl Inputs {
    pub fn new(b: &Batch, device: &Device) -> Self {
        let n = b.rows;
        let int = |v: &[i64], w: usize| {
            Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), [n, w]), device)
        };
        Inputs {
            single: int(&b.single, b.single_fields),
            multi: int(&b.multi, b.multi_width),
            mask: Tensor::from_data(
                TensorData::new(b.mask.clone(), [n, b.multi_width, 1]),
                device,
            ),
            distinct: Tensor::from_data(
                TensorData::new(b.distinct.clone(), [n, b.multi_width, 1]),
                device,
            ),
            inv_len: Tensor::from_data(
                TensorData::new(b.inv_len.clone(), [n, b.multi_fields]),
                device,
            ),
            ad: int(&b.ad, b.ad_fields),
            labels: Tensor::from_data(TensorData::new(b.labels.clone(), [n]), device),
        }
    }
}

/// Parameter initialisation.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// PyTorch defaults from our own seeded RNG: embeddings N(0, 1), linear layers U(±1/√fan_in).
    /// Drawing on the host makes a seed give the same model on every backend.
    Seeded(u64),
    /// All zeros: a shell to load a record into.
    Zeros,
}

pub(crate) struct Initializer {
    rng: Option<StdRng>,
    device: Device,
    /// Parameter ids are numbered in construction order (not random) so a seed gives an identical record.
    next_id: u64,
}

impl Initializer {
    pub(crate) fn new(init: Init, device: &Device) -> Self {
        Initializer {
            rng: match init {
                Init::Seeded(seed) => Some(StdRng::seed_from_u64(seed)),
                Init::Zeros => None,
            },
            device: device.clone(),
            next_id: 0,
        }
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn param<const D: usize>(&mut self, t: Tensor<D>) -> Param<Tensor<D>> {
        self.next_id += 1;
        let mut p = Param::from_tensor(t);
        p.id = ParamId::from(self.next_id);
        p
    }

    pub(crate) fn tensor(
        &mut self,
        shape: [usize; 2],
        draw: impl Fn(&mut StdRng) -> f32,
    ) -> Tensor<2> {
        let n = shape[0] * shape[1];
        let values: Vec<f32> = match &mut self.rng {
            Some(rng) => (0..n).map(|_| draw(rng)).collect(),
            None => vec![0.0; n],
        };
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    pub(crate) fn embedding(&mut self, rows: usize, dim: usize, std: f32) -> Embedding {
        let weight = self.tensor([rows, dim], |rng| {
            // Box–Muller: one N(0, σ²) draw.
            let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
            let u2: f32 = rng.random::<f32>();
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        });
        Embedding {
            weight: self.param(weight),
        }
    }

    pub(crate) fn linear(&mut self, d_in: usize, d_out: usize) -> Linear {
        let bound = 1.0 / (d_in as f32).sqrt();
        let uniform = move |rng: &mut StdRng| (rng.random::<f32>() * 2.0 - 1.0) * bound;
        let weight = self.tensor([d_in, d_out], uniform);
        let bias = self.tensor([1, d_out], uniform).reshape([d_out]);
        Linear {
            weight: self.param(weight),
            bias: Some(self.param(bias)),
        }
    }
}

impl MetaHeacConfig {
    /// The defaults for a data schema (its table sizes and multi-valued layout).
    pub fn for_schema(schema: &crate::schema::Schema) -> Self {
        Self::new(schema.table_sizes()).with_multi_lens(schema.multi_lens())
    }

    /// A complete model: every table, expert, critic and gate, laid out for `multi_lens`.
    pub fn init(&self, init: Init, device: &Device) -> MetaHeac {
        assert_eq!(
            self.multi_lens.len(),
            self.tables.user_multi.len(),
            "MetaHeacConfig::multi_lens must give one max length per multi-valued field (Schema::multi_lens)"
        );
        let mut ini = Initializer::new(init, device);
        let (d, std) = (self.embed_dim, self.embed_init_std as f32);
        let t = &self.tables;
        let user_single = t
            .user_single
            .iter()
            .map(|&n| ini.embedding(n, d, std))
            .collect();
        let user_multi = t
            .user_multi
            .iter()
            .map(|&n| ini.embedding(n, d, std))
            .collect();
        let ad = t.ad.iter().map(|&n| ini.embedding(n, d, std)).collect();
        let x_dim = (t.user_single.len() + t.user_multi.len()) * d;
        let experts = (0..self.num_experts)
            .map(|_| {
                let mut d_in = x_dim;
                let layers = self
                    .expert_dims
                    .iter()
                    .map(|&d_out| {
                        let l = ini.linear(d_in, d_out);
                        d_in = d_out;
                        l
                    })
                    .collect();
                Expert { layers }
            })
            .collect();
        let t_dim = self.task_dim();
        let mut gate = |out: usize| Gate {
            hidden: ini.linear(t_dim, self.gate_hidden),
            out: ini.linear(self.gate_hidden, out),
        };
        let expert_gate = gate(self.num_experts);
        let critic_gate = gate(self.num_critics);
        let h_dim = *self.expert_dims.last().unwrap_or(&x_dim);
        let critics = (0..self.num_critics)
            .map(|_| ini.linear(h_dim, 1))
            .collect();
        let wide = if self.wide {
            t.user_single
                .iter()
                .chain(&t.user_multi)
                .map(|&n| Embedding {
                    weight: ini.param(Tensor::zeros([n, 1], device)),
                })
                .collect()
        } else {
            Vec::new()
        };
        let wide_scale = self.wide.then(|| ini.param(Tensor::ones([1], device)));
        MetaHeac {
            user_single,
            user_multi,
            ad,
            experts,
            expert_gate,
            critics,
            critic_gate,
            wide,
            wide_scale,
            critic_combine: self.critic_combine,
            gate_context: self.gate_context,
            multi_lens: self.multi_lens.clone(),
        }
    }

    /// Width of the task representation t fed to both gates.
    pub fn task_dim(&self) -> usize {
        let user = match self.gate_context {
            GateContext::FieldMean => 1,
            GateContext::None => 0,
        };
        (user + self.tables.ad.len()) * self.embed_dim
    }
}

impl MetaHeac {
    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.critics[0].weight.val().device()
    }

    /// User-field embeddings E_u, shape `[B, F, D]`; multi-valued fields are masked means.
    fn user_embeddings(&self, x: &Inputs) -> Tensor<3> {
        let mut fields = Vec::with_capacity(self.user_single.len() + self.user_multi.len());
        for (f, table) in self.user_single.iter().enumerate() {
            fields.push(table.forward(x.single.clone().narrow(1, f, 1)));
        }
        let mut offset = 0;
        for (f, (table, &len)) in self.user_multi.iter().zip(&self.multi_lens).enumerate() {
            let ids = x.multi.clone().narrow(1, offset, len);
            let mask = x.mask.clone().narrow(1, offset, len);
            let inv_len = x.inv_len.clone().narrow(1, f, 1).unsqueeze_dim::<3>(2);
            fields.push((table.forward(ids) * mask).sum_dim(1) * inv_len);
            offset += len;
        }
        Tensor::cat(fields, 1)
    }

    /// The wide logit w(x) = Σ over the user's distinct tokens of their weights, shape `[B, 1]`.
    fn wide_logit(&self, x: &Inputs) -> Option<Tensor<2>> {
        if self.wide.is_empty() {
            return None;
        }
        let singles = self.user_single.len();
        let mut sum: Option<Tensor<2>> = None;
        let mut add = |t: Tensor<2>| {
            sum = Some(match sum.take() {
                Some(s) => s + t,
                None => t,
            })
        };
        for (f, table) in self.wide[..singles].iter().enumerate() {
            // [B, 1] ids → [B, 1, 1] weights.
            add(table
                .forward(x.single.clone().narrow(1, f, 1))
                .squeeze_dim::<2>(2));
        }
        let mut offset = 0;
        for (table, &len) in self.wide[singles..].iter().zip(&self.multi_lens) {
            let ids = x.multi.clone().narrow(1, offset, len);
            let mask = x.distinct.clone().narrow(1, offset, len);
            add((table.forward(ids) * mask).sum_dim(1).squeeze_dim::<2>(2));
            offset += len;
        }
        sum
    }

    /// The user representation x = [e_1 ‖ … ‖ e_F], shape `[B, F·D]` (the experts' input).
    pub fn user_vectors(&self, x: &Inputs) -> Tensor<2> {
        let e_u = self.user_embeddings(x);
        let [b, f, d] = e_u.dims();
        e_u.reshape([b, f * d])
    }

    pub fn forward(&self, x: &Inputs) -> Output {
        let e_u = self.user_embeddings(x);
        let [b, f, d] = e_u.dims();
        let ad: Vec<Tensor<3>> = self
            .ad
            .iter()
            .enumerate()
            .map(|(i, table)| table.forward(x.ad.clone().narrow(1, i, 1)))
            .collect();
        let mut task_parts = Vec::with_capacity(ad.len() + 1);
        if self.gate_context == GateContext::FieldMean {
            task_parts.push(e_u.clone().mean_dim(1));
        }
        task_parts.extend(ad);
        let t_fields = task_parts.len();
        let t: Tensor<2> = Tensor::cat(task_parts, 1).reshape([b, t_fields * d]);
        let x_u: Tensor<2> = e_u.reshape([b, f * d]);

        // Hybrid experts: h = Σ_k g_k E_k(x).
        let g = self.expert_gate.forward(t.clone());
        // Side by side where gradients flow (meta-training, fine-tuning: measured 10–30 % more rows/s);
        // one by one for scores alone, where the wider product was measured no faster.
        let stacked: Tensor<3> = if self.experts[0]
            .layers
            .first()
            .is_some_and(|l| l.weight.val().is_require_grad())
        {
            experts_forward(&self.experts, x_u)
        } else {
            experts_one_by_one(&self.experts, x_u)
        };
        let h: Tensor<2> = (stacked * g.clone().unsqueeze_dim::<3>(2))
            .sum_dim(1)
            .squeeze_dim::<2>(1);

        // Hybrid critics: ŷ = Σ_j c_j σ(T_j(h)), with z_j = T_j(h).
        let log_c = self.critic_gate.log_weights(t);
        let c = log_c.clone().exp();
        let z = self.critic_logits(h);
        let (mut prob, mut log_prob, mut log_not_prob) =
            critic_mixture(log_c, c.clone(), z, self.critic_combine);

        // Wide part: ŷ' = σ(s · logit ŷ + w(x)), with logit ŷ = log ŷ − log(1 − ŷ) (finite where ŷ rounds
        // to 0 or 1).
        if let (Some(w), Some(scale)) = (self.wide_logit(x), &self.wide_scale) {
            let logit = (log_prob - log_not_prob) * scale.val() + w.squeeze_dim::<1>(1);
            prob = sigmoid(logit.clone());
            log_prob = log_sigmoid(logit.clone());
            log_not_prob = log_sigmoid(logit.neg());
        }
        Output {
            prob,
            log_prob,
            log_not_prob,
            expert_gate: g,
            critic_gate: c,
        }
    }

    /// Floating-point operations of one user's forward pass through the layers (a multiply-add is two):
    /// every expert, both gates, every critic. Embedding look-ups, element-wise work and the wide part
    /// are not counted.
    pub fn flops_per_user(&self) -> f64 {
        let gate = |g: &Gate| linear_flops(&g.hidden) + linear_flops(&g.out);
        self.experts
            .iter()
            .flat_map(|e| &e.layers)
            .map(linear_flops)
            .sum::<f64>()
            + gate(&self.expert_gate)
            + gate(&self.critic_gate)
            + self.critics.iter().map(linear_flops).sum::<f64>()
    }

    /// The critics' logits z_j = T_j(h), shape `[B, m]`, from the mixed expert output h `[B, d]`.
    pub(crate) fn critic_logits(&self, h: Tensor<2>) -> Tensor<2> {
        Tensor::cat(
            self.critics
                .iter()
                .map(|t_j| t_j.forward(h.clone()))
                .collect(),
            1,
        )
    }

    /// Mean binary cross-entropy of the model on a batch.
    pub fn loss(&self, x: &Inputs) -> Tensor<1> {
        bce(&self.forward(x), x.labels.clone())
    }
}

/// FLOPs of one row through a linear layer (its multiply-adds, two FLOPs each; the bias not counted).
pub(crate) fn linear_flops(l: &Linear) -> f64 {
    let [i, o] = l.weight.val().dims();
    2.0 * (i * o) as f64
}

/// The hybrid critics' mixture ŷ = Σ_j c_j σ(z_j) (or its 1/m-scaled MTReclib form) from the gate's
/// log-weights `log_c` (and weights `c`) and the critics' logits `z`, all `[B, m]`: (ŷ, log ŷ,
/// log(1 − ŷ)), the logs through log-sum-exps so they stay finite where ŷ rounds to 0 or 1.
pub(crate) fn critic_mixture(
    log_c: Tensor<2>,
    c: Tensor<2>,
    z: Tensor<2>,
    combine: CriticCombine,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let critics = z.dims()[1];
    let mut prob: Tensor<1> = (sigmoid(z.clone()) * c).sum_dim(1).squeeze_dim::<1>(1);
    let mut log_prob = log_sum_exp(log_c.clone() + log_sigmoid(z.clone()));
    let log_not_prob = match combine {
        // Σ_j c_j = 1, so 1 − ŷ = Σ_j c_j σ(−z_j).
        CriticCombine::Sum => log_sum_exp(log_c + log_sigmoid(z.neg())),
        CriticCombine::Mean => {
            // ŷ/m: 1 − ŷ/m = (1/m) Σ_j c_j (m − σ(z_j)), where m − σ ≥ m − 1 (safe for m ≥ 2).
            let m = critics as f32;
            if critics > 1 {
                prob = prob.div_scalar(m);
                log_prob = log_prob.sub_scalar(m.ln());
                log_sum_exp(log_c + sigmoid(z).neg().add_scalar(m).log()).sub_scalar(m.ln())
            } else {
                log_sum_exp(log_c + log_sigmoid(z.neg()))
            }
        }
    };
    (prob, log_prob, log_not_prob)
}

/// log Σ_j exp(x_j) along dim 1, shape `[B, k]` → `[B]` (the max is subtracted first; it is a constant
/// for the gradient, so it is detached).
pub(crate) fn log_sum_exp(x: Tensor<2>) -> Tensor<1> {
    let max = x.clone().detach().max_dim(1);
    ((x - max.clone()).exp().sum_dim(1).log() + max).squeeze_dim::<1>(1)
}

/// Binary cross-entropy, mean over the batch, from the log-probabilities of [`Output`]: finite with a
/// finite gradient even where ŷ rounds to exactly 0 or 1 (PyTorch's BCELoss clamps the forward only).
pub fn bce(out: &Output, labels: Tensor<1>) -> Tensor<1> {
    let pos = labels.clone() * out.log_prob.clone();
    let neg = labels.neg().add_scalar(1.0) * out.log_not_prob.clone();
    (pos + neg).mean().neg()
}
