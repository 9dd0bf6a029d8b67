//! Multi-task mode: the models of MTReclib (Zhu et al.'s multi-task recommendation library) for CTR and
//! CTCVR on AliExpress-format data, sharing one embedding layer and one MLP block (reference doc §5.2):
//!
//! ```text
//!   e   = [E(c_1) ‖ … ‖ E(c_F) ‖ W·n]          one table with per-field offsets, numericals as a field
//!   x   = flatten(e)                            B × (F+1)·D
//!   MLP = (Linear → BatchNorm → ReLU → Dropout)*  [→ Linear(→1)]
//!
//!   SingleTask     ŷ_t = σ(T_t(B_t(x_t)))       a whole network per task
//!   Shared-Bottom  ŷ_t = σ(T_t(B(x)))
//!   OMoE           ŷ_t = σ(T_t(Σ_k g_k E_k(x))),    g = softmax(G x)      one gate
//!   MMoE           ŷ_t = σ(T_t(Σ_k g_tk E_k(x))),   g_t = softmax(G_t x)  a gate per task
//!   PLE            per level: task t mixes its own and the shared experts on its stream, the shared
//!                  stream mixes every expert (not at the last level); towers on the task streams
//!   AITM           f_t = B_t(x); f_t ← Σ_{j∈{p,q}} w_j V(x_j) with x = [g_{t−1}(f_{t−1}), f_t],
//!                  w = softmax(K(x)·Q(x) / √H)  (information passed from the previous task)
//!   MetaHeac       z_t = [τ_t ‖ mean_f e_f]  (a learned task vector and the sample's field mean)
//!                  h_t = Σ_k g_k(z_t) E_k(x),  ŷ_t = Σ_j c_j(z_t) σ(T_j(h_t))   (Eq. 9, experts, critics
//!                  and both one-layer gates shared by the tasks); meta-trained (`mtl_train`)
//! ```
//!
//! AITM's label constraint (the paper's calibration loss, α · mean max(ŷ_ctcvr − ŷ_ctr, 0), which
//! MTReclib omits) is on by default and switched off with `aitm_calibration = 0`.
//!
//! Every model gives, per task, log ŷ and log(1 − ŷ) (from logits, so the loss stays finite where ŷ
//! rounds to 0 or 1), and the loss is MTReclib's: the mean over tasks of each task's mean BCE.

use crate::metrics::auc;
use crate::model::{CriticCombine, Init, Initializer, critic_mixture};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Embedding, Linear};
use burn::tensor::activation::{log_sigmoid, log_softmax, relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::RngExt;

/// Rows of the multi-task layout: `cat[r * C + f]`, `num[r * N + f]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MtlTable {
    /// Categorical column names, in the order of `cat`.
    pub categorical: Vec<String>,
    /// Numerical column names, in the order of `num`.
    pub numerical: Vec<String>,
    pub cat: Vec<u32>,
    pub num: Vec<f32>,
    pub click: Vec<u8>,
    pub conversion: Vec<u8>,
}

impl MtlTable {
    pub fn new(categorical: Vec<String>, numerical: Vec<String>) -> Self {
        MtlTable {
            categorical,
            numerical,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.click.len()
    }

    pub fn is_empty(&self) -> bool {
        self.click.is_empty()
    }

    pub fn push(&mut self, cat: &[u32], num: &[f32], click: bool, conversion: bool) {
        debug_assert_eq!(cat.len(), self.categorical.len());
        debug_assert_eq!(num.len(), self.numerical.len());
        self.cat.extend_from_slice(cat);
        self.num.extend_from_slice(num);
        self.click.push(click as u8);
        self.conversion.push(conversion as u8);
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> MtlTable {
        let (c, n) = (self.categorical.len(), self.numerical.len());
        let mut t = MtlTable::new(self.categorical.clone(), self.numerical.clone());
        t.cat.reserve(idx.len() * c);
        t.num.reserve(idx.len() * n);
        for &r in idx {
            t.cat.extend_from_slice(&self.cat[r * c..(r + 1) * c]);
            t.num.extend_from_slice(&self.num[r * n..(r + 1) * n]);
            t.click.push(self.click[r]);
            t.conversion.push(self.conversion[r]);
        }
        t
    }

    /// Positive rate of each task (CTR, CTCVR).
    pub fn rates(&self) -> (f64, f64) {
        let n = self.len().max(1) as f64;
        let s = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (s(&self.click), s(&self.conversion))
    }

    /// The labels of task `t` (0: click, 1: conversion).
    pub fn labels(&self, t: usize) -> &[u8] {
        if t == 0 {
            &self.click
        } else {
            &self.conversion
        }
    }
}

/// The names the reports and the JSON use.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum MtlModelKind {
    SingleTask,
    SharedBottom,
    OMoE,
    MMoE,
    Ple,
    Aitm,
    MetaHeac,
}

impl MtlModelKind {
    pub const ALL: [MtlModelKind; 7] = [
        MtlModelKind::SingleTask,
        MtlModelKind::SharedBottom,
        MtlModelKind::OMoE,
        MtlModelKind::MMoE,
        MtlModelKind::Ple,
        MtlModelKind::Aitm,
        MtlModelKind::MetaHeac,
    ];

    /// MTReclib's name.
    pub fn name(self) -> &'static str {
        match self {
            MtlModelKind::SingleTask => "SingleTask",
            MtlModelKind::SharedBottom => "Shared-Bottom",
            MtlModelKind::OMoE => "OMoE",
            MtlModelKind::MMoE => "MMoE",
            MtlModelKind::Ple => "PLE",
            MtlModelKind::Aitm => "AITM",
            MtlModelKind::MetaHeac => "MetaHeac",
        }
    }
}

/// Every hyper-parameter of the multi-task models, with MTReclib's defaults (reference doc §5.3).
#[derive(Config, Debug)]
pub struct MtlConfig {
    pub kind: MtlModelKind,
    /// Rows of each categorical field's table (over train ∪ test).
    pub field_sizes: Vec<usize>,
    /// Number of numerical features (one extra "field" through a linear layer).
    pub numerical: usize,
    #[config(default = 2)]
    pub tasks: usize,
    #[config(default = 128)]
    pub embed_dim: usize,
    /// Bottom (and expert) MLP widths.
    #[config(default = "vec![512, 256]")]
    pub bottom_dims: Vec<usize>,
    /// Tower MLP widths (then a linear layer to one logit).
    #[config(default = "vec![128, 64]")]
    pub tower_dims: Vec<usize>,
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Experts of OMoE and MMoE; PLE has half of them shared and half per task at each level.
    #[config(default = 8)]
    pub num_experts: usize,
    /// Weight α of AITM's label constraint (0: off, as in MTReclib).
    #[config(default = 0.6)]
    pub aitm_calibration: f64,
    /// MetaHeac's critics m.
    #[config(default = 5)]
    pub num_critics: usize,
    /// MetaHeac's critic mixture: Σ (official) or MTReclib's 1/m-scaled mean (ŷ ≤ 1/m).
    #[config(default = "CriticCombine::Sum")]
    pub critic_combine: CriticCombine,
    /// MetaHeac's inner (support) learning rate α (MTReclib hard-codes 2e-4).
    #[config(default = 2e-4)]
    pub inner_lr: f64,
    /// What MetaHeac's inner step adapts.
    #[config(default = "AdaptScope::All")]
    pub adapt: AdaptScope,
}

/// What MetaHeac's inner step adapts.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum AdaptScope {
    /// Every parameter (the official MetaHeac code).
    All,
    /// The task embedding only: what MTReclib's port effectively adapts (its other layers never read
    /// the fast weights).
    TaskEmbedding,
}

/// One table for every categorical field (rows offset per field) and a linear layer for the
/// numerical features, which enter as one more field.
#[derive(Module, Debug)]
pub struct FieldEmbedding {
    pub table: Embedding,
    pub numerical: Option<Linear>,
}

impl FieldEmbedding {
    /// `[B, F(+1), D]`.
    pub fn forward(&self, x: &MtlInputs) -> Tensor<3> {
        let e = self.table.forward(x.cat.clone());
        match &self.numerical {
            Some(l) => Tensor::cat(vec![e, l.forward(x.num.clone()).unsqueeze_dim(1)], 1),
            None => e,
        }
    }
}

/// MTReclib's MLP: per hidden layer Linear → BatchNorm → ReLU → Dropout, then optionally a linear
/// layer to one output.
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub norms: Vec<BatchNorm>,
    pub dropout: Dropout,
    pub out: Option<Linear>,
}

impl Mlp {
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for (l, n) in self.layers.iter().zip(&self.norms) {
            x = self.dropout.forward(relu(n.forward(l.forward(x))));
        }
        match &self.out {
            Some(o) => o.forward(x),
            None => x,
        }
    }
}

/// A tower's output per task: log ŷ and log(1 − ŷ), `[B]` each.
#[derive(Debug, Clone)]
pub struct TaskOutput {
    pub log_prob: Tensor<1>,
    pub log_not_prob: Tensor<1>,
}

impl TaskOutput {
    fn from_logit(z: Tensor<2>) -> Self {
        let z = z.squeeze_dim::<1>(1);
        TaskOutput {
            log_prob: log_sigmoid(z.clone()),
            log_not_prob: log_sigmoid(z.neg()),
        }
    }

    pub fn prob(&self) -> Tensor<1> {
        self.log_prob.clone().exp()
    }
}

/// A batch on the device: categorical ids already offset into the one table.
#[derive(Debug, Clone)]
pub struct MtlInputs {
    pub cat: Tensor<2, Int>,
    pub num: Tensor<2>,
    /// One `[B]` tensor of 0/1 per task.
    pub labels: Vec<Tensor<1>>,
}

impl MtlInputs {
    /// The rows `rows` of `t`; `offsets[f]` is field f's first row in the table.
    pub fn new(
        t: &MtlTable,
        rows: &[usize],
        offsets: &[u32],
        tasks: usize,
        device: &Device,
    ) -> Self {
        let (c, n, b) = (t.categorical.len(), t.numerical.len(), rows.len());
        let mut cat = Vec::with_capacity(b * c);
        let mut num = Vec::with_capacity(b * n);
        for &r in rows {
            cat.extend(
                t.cat[r * c..(r + 1) * c]
                    .iter()
                    .zip(offsets)
                    .map(|(&v, &o)| (v + o) as i64),
            );
            num.extend_from_slice(&t.num[r * n..(r + 1) * n]);
        }
        let labels = (0..tasks)
            .map(|k| {
                let y: Vec<f32> = rows.iter().map(|&r| t.labels(k)[r] as f32).collect();
                Tensor::from_data(TensorData::new(y, [b]), device)
            })
            .collect();
        MtlInputs {
            cat: Tensor::from_data(TensorData::new(cat, [b, c]), device),
            num: Tensor::from_data(TensorData::new(num, [b, n]), device),
            labels,
        }
    }
}

/// Field offsets into the one table.
pub fn offsets(field_sizes: &[usize]) -> Vec<u32> {
    let mut o = Vec::with_capacity(field_sizes.len());
    let mut at = 0u32;
    for &s in field_sizes {
        o.push(at);
        at += s as u32;
    }
    o
}

/// A task's bottom and tower (SingleTask has a whole network per task).
#[derive(Module, Debug)]
pub struct TaskNet {
    pub embedding: FieldEmbedding,
    pub bottom: Mlp,
    pub tower: Mlp,
}

#[derive(Module, Debug)]
pub struct SingleTask {
    pub nets: Vec<TaskNet>,
}

#[derive(Module, Debug)]
pub struct SharedBottom {
    pub embedding: FieldEmbedding,
    pub bottom: Mlp,
    pub towers: Vec<Mlp>,
}

/// OMoE (one gate) and MMoE (a gate per task).
#[derive(Module, Debug)]
pub struct MixtureOfExperts {
    pub embedding: FieldEmbedding,
    pub experts: Vec<Mlp>,
    pub gates: Vec<Linear>,
    pub towers: Vec<Mlp>,
}

/// One level of PLE: experts of each task and shared ones, a gate per task, and (except at the last
/// level) a gate for the shared stream.
#[derive(Module, Debug)]
pub struct PleLevel {
    pub task_experts: Vec<Vec<Mlp>>,
    pub shared_experts: Vec<Mlp>,
    pub task_gates: Vec<Linear>,
    pub shared_gate: Option<Linear>,
}

#[derive(Module, Debug)]
pub struct Ple {
    pub embedding: FieldEmbedding,
    pub levels: Vec<PleLevel>,
    pub towers: Vec<Mlp>,
}

#[derive(Module, Debug)]
pub struct Aitm {
    pub embedding: FieldEmbedding,
    pub bottoms: Vec<Mlp>,
    /// g_{t−1}: what task t−1 passes to task t.
    pub transfer: Vec<Linear>,
    /// h1, h2, h3 (V, K, Q), shared across tasks as in MTReclib.
    pub value: Linear,
    pub key: Linear,
    pub query: Linear,
    pub towers: Vec<Mlp>,
    pub calibration: f64,
}

/// MetaHeac for multi-task (MTReclib's `HeacModel`): the tasks are CTR and CTCVR, each with a learned
/// vector that, beside the sample's field mean, drives both gates.
#[derive(Module, Debug)]
pub struct MetaHeacMtl {
    pub embedding: FieldEmbedding,
    /// τ_t: `[tasks, D]`.
    pub task_embedding: Embedding,
    pub experts: Vec<Mlp>,
    /// One linear layer on z (2D → experts), as MTReclib (the official code has a hidden layer).
    pub expert_gate: Linear,
    pub critics: Vec<Mlp>,
    pub critic_gate: Linear,
    /// `critic_combine` is Mean (MTReclib's 1/m scaling).
    pub critic_mean: bool,
}

#[derive(Module, Debug)]
pub enum MtlNet {
    SingleTask(SingleTask),
    SharedBottom(SharedBottom),
    MixtureOfExperts(MixtureOfExperts),
    Ple(Ple),
    Aitm(Aitm),
    MetaHeac(MetaHeacMtl),
}

/// A multi-task model: its network and its number of tasks.
#[derive(Module, Debug)]
pub struct MtlModel {
    pub net: MtlNet,
    pub tasks: usize,
}

/// What a forward pass gives: per task its output, and the mixing weights when the model has them
/// (`[B, k]` each): OMoE's gate, MMoE's per task, PLE's task gates then shared gates level by level,
/// AITM's attention over (transferred, own) per task after the first.
#[derive(Debug, Clone)]
pub struct MtlOutput {
    pub tasks: Vec<TaskOutput>,
    pub gates: Vec<Tensor<2>>,
}

/// Σ_k g_k e_k: experts `[B, K, H]` mixed by weights `[B, K]` → `[B, H]`.
fn mix(experts: Tensor<3>, g: Tensor<2>) -> Tensor<2> {
    (experts * g.unsqueeze_dim::<3>(2))
        .sum_dim(1)
        .squeeze_dim::<2>(1)
}

fn flatten(e: Tensor<3>) -> Tensor<2> {
    let [b, f, d] = e.dims();
    e.reshape([b, f * d])
}

impl MtlModel {
    pub fn forward(&self, x: &MtlInputs) -> MtlOutput {
        match &self.net {
            MtlNet::SingleTask(m) => MtlOutput {
                tasks: m
                    .nets
                    .iter()
                    .map(|n| {
                        let h = n.bottom.forward(flatten(n.embedding.forward(x)));
                        TaskOutput::from_logit(n.tower.forward(h))
                    })
                    .collect(),
                gates: Vec::new(),
            },
            MtlNet::SharedBottom(m) => {
                let h = m.bottom.forward(flatten(m.embedding.forward(x)));
                MtlOutput {
                    tasks: m
                        .towers
                        .iter()
                        .map(|t| TaskOutput::from_logit(t.forward(h.clone())))
                        .collect(),
                    gates: Vec::new(),
                }
            }
            MtlNet::MixtureOfExperts(m) => {
                let x = flatten(m.embedding.forward(x));
                // [B, K, H]: every expert's output.
                let experts =
                    Tensor::stack::<3>(m.experts.iter().map(|e| e.forward(x.clone())).collect(), 1);
                let gates: Vec<Tensor<2>> = m
                    .gates
                    .iter()
                    .map(|g| softmax(g.forward(x.clone()), 1))
                    .collect();
                let tasks = m
                    .towers
                    .iter()
                    .enumerate()
                    .map(|(t, tower)| {
                        // OMoE: the one gate feeds every tower.
                        let g = gates[t.min(gates.len() - 1)].clone();
                        TaskOutput::from_logit(tower.forward(mix(experts.clone(), g)))
                    })
                    .collect();
                MtlOutput { tasks, gates }
            }
            MtlNet::Ple(m) => {
                let x = flatten(m.embedding.forward(x));
                let tasks = m.towers.len();
                // Streams 0..T are the tasks', stream T the shared one.
                let mut streams = vec![x; tasks + 1];
                let mut gates = Vec::new();
                for level in &m.levels {
                    let shared: Vec<Tensor<2>> = level
                        .shared_experts
                        .iter()
                        .map(|e| e.forward(streams[tasks].clone()))
                        .collect();
                    let own: Vec<Vec<Tensor<2>>> = level
                        .task_experts
                        .iter()
                        .enumerate()
                        .map(|(t, es)| es.iter().map(|e| e.forward(streams[t].clone())).collect())
                        .collect();
                    let mut next = Vec::with_capacity(tasks + 1);
                    for (t, gate) in level.task_gates.iter().enumerate() {
                        let g = softmax(gate.forward(streams[t].clone()), 1);
                        let experts: Vec<Tensor<2>> =
                            own[t].iter().chain(&shared).cloned().collect();
                        next.push(mix(Tensor::stack::<3>(experts, 1), g.clone()));
                        gates.push(g);
                    }
                    next.push(match &level.shared_gate {
                        Some(gate) => {
                            let g = softmax(gate.forward(streams[tasks].clone()), 1);
                            let experts: Vec<Tensor<2>> =
                                own.iter().flatten().chain(&shared).cloned().collect();
                            let h = mix(Tensor::stack::<3>(experts, 1), g.clone());
                            gates.push(g);
                            h
                        }
                        // The last level's shared stream feeds no tower.
                        None => streams[tasks].clone(),
                    });
                    streams = next;
                }
                MtlOutput {
                    tasks: m
                        .towers
                        .iter()
                        .zip(&streams)
                        .map(|(tower, h)| TaskOutput::from_logit(tower.forward(h.clone())))
                        .collect(),
                    gates,
                }
            }
            MtlNet::Aitm(m) => {
                let x = flatten(m.embedding.forward(x));
                let mut features: Vec<Tensor<2>> =
                    m.bottoms.iter().map(|b| b.forward(x.clone())).collect();
                let mut gates = Vec::new();
                let scale = (m.value.weight.dims()[1] as f32).sqrt();
                for t in 1..features.len() {
                    let p = m.transfer[t - 1].forward(features[t - 1].clone());
                    // [B, 2, H]: what the previous task passes, and this task's own feature.
                    let both = Tensor::stack::<3>(vec![p, features[t].clone()], 1);
                    let (v, k, q) = (
                        m.value.forward(both.clone()),
                        m.key.forward(both.clone()),
                        m.query.forward(both),
                    );
                    let w = softmax((k * q).sum_dim(2).squeeze_dim::<2>(2).div_scalar(scale), 1);
                    features[t] = mix(v, w.clone());
                    gates.push(w);
                }
                MtlOutput {
                    tasks: m
                        .towers
                        .iter()
                        .zip(features)
                        .map(|(tower, h)| TaskOutput::from_logit(tower.forward(h)))
                        .collect(),
                    gates,
                }
            }
            MtlNet::MetaHeac(m) => {
                let e = m.embedding.forward(x);
                let [b, _, d] = e.dims();
                let field_mean: Tensor<2> = e.clone().mean_dim(1).squeeze_dim::<2>(1);
                let x = flatten(e);
                let experts =
                    Tensor::stack::<3>(m.experts.iter().map(|e| e.forward(x.clone())).collect(), 1);
                let combine = if m.critic_mean {
                    CriticCombine::Mean
                } else {
                    CriticCombine::Sum
                };
                let tau = m.task_embedding.weight.val();
                let mut gates = Vec::new();
                let mut tasks = Vec::new();
                for t in 0..self.tasks {
                    // z_t = [τ_t ‖ mean_f e_f], `[B, 2D]`.
                    let tau_t = tau.clone().narrow(0, t, 1).expand([b, d]);
                    let z = Tensor::cat(vec![tau_t, field_mean.clone()], 1);
                    let g = softmax(m.expert_gate.forward(z.clone()), 1);
                    let h = mix(experts.clone(), g.clone());
                    let log_c = log_softmax(m.critic_gate.forward(z), 1);
                    let c = log_c.clone().exp();
                    let logits =
                        Tensor::cat(m.critics.iter().map(|k| k.forward(h.clone())).collect(), 1);
                    let (_, log_prob, log_not_prob) =
                        critic_mixture(log_c, c.clone(), logits, combine);
                    tasks.push(TaskOutput {
                        log_prob,
                        log_not_prob,
                    });
                    gates.push(g);
                    gates.push(c);
                }
                MtlOutput { tasks, gates }
            }
        }
    }

    /// The parameter id of MetaHeac's task embedding (what `AdaptScope::TaskEmbedding` adapts).
    pub fn task_embedding_id(&self) -> Option<burn::module::ParamId> {
        match &self.net {
            MtlNet::MetaHeac(m) => Some(m.task_embedding.weight.id),
            _ => None,
        }
    }

    /// MTReclib's loss: the mean over tasks of each task's mean binary cross-entropy; for AITM plus
    /// its label constraint, α · mean max(ŷ_t − ŷ_{t−1}, 0) (a conversion needs a click).
    pub fn loss(&self, x: &MtlInputs) -> Tensor<1> {
        let out = self.forward(x);
        let n = out.tasks.len() as f32;
        let mut loss = out
            .tasks
            .iter()
            .zip(&x.labels)
            .map(|(o, y)| bce(o, y.clone()))
            .reduce(|a, b| a + b)
            .expect("at least one task")
            .div_scalar(n);
        if let MtlNet::Aitm(m) = &self.net
            && m.calibration > 0.0
        {
            for pair in out.tasks.windows(2) {
                let excess = relu(pair[1].prob() - pair[0].prob()).mean();
                loss = loss + excess.mul_scalar(m.calibration as f32);
            }
        }
        loss
    }

    pub fn device(&self) -> Device {
        self.devices()
            .into_iter()
            .next()
            .expect("a model has parameters")
    }
}

/// Mean binary cross-entropy from log-probabilities.
pub fn bce(o: &TaskOutput, y: Tensor<1>) -> Tensor<1> {
    let pos = y.clone() * o.log_prob.clone();
    let neg = y.neg().add_scalar(1.0) * o.log_not_prob.clone();
    (pos + neg).mean().neg()
}

impl Initializer {
    /// MTReclib's embedding layer: one table of Σ sizes × D, `xavier_uniform_` over the whole table
    /// (bound √(6 / (D + Σ sizes))), and the numerical layer.
    fn field_embedding(&mut self, sizes: &[usize], numerical: usize, dim: usize) -> FieldEmbedding {
        let rows: usize = sizes.iter().sum::<usize>().max(1);
        let bound = (6.0 / (dim + rows) as f32).sqrt();
        let weight = self.tensor([rows, dim], |rng| (rng.random::<f32>() * 2.0 - 1.0) * bound);
        FieldEmbedding {
            table: Embedding {
                weight: self.param(weight),
            },
            numerical: (numerical > 0).then(|| self.linear(numerical, dim)),
        }
    }

    fn mlp(&mut self, d_in: usize, dims: &[usize], dropout: f64, output: bool) -> Mlp {
        let mut d = d_in;
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        for &w in dims {
            layers.push(self.linear(d, w));
            norms.push(BatchNormConfig::new(w).init(self.device()));
            d = w;
        }
        Mlp {
            layers,
            norms,
            dropout: DropoutConfig::new(dropout).init(),
            out: output.then(|| self.linear(d, 1)),
        }
    }
}

impl MtlConfig {
    /// Width of the flattened embedding: (fields + the numerical one) × D.
    pub fn input_dim(&self) -> usize {
        (self.field_sizes.len() + usize::from(self.numerical > 0)) * self.embed_dim
    }

    /// A complete model of `self.kind`.
    pub fn init(&self, init: Init, device: &Device) -> MtlModel {
        assert!(self.tasks >= 1, "at least one task");
        let mut ini = Initializer::new(init, device);
        let (x_dim, d) = (self.input_dim(), self.embed_dim);
        let h_dim = *self.bottom_dims.last().unwrap_or(&x_dim);
        let p = self.dropout;
        let net = match self.kind {
            MtlModelKind::SingleTask => MtlNet::SingleTask(SingleTask {
                nets: (0..self.tasks)
                    .map(|_| TaskNet {
                        embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                        bottom: ini.mlp(x_dim, &self.bottom_dims, p, false),
                        tower: ini.mlp(h_dim, &self.tower_dims, p, true),
                    })
                    .collect(),
            }),
            MtlModelKind::SharedBottom => MtlNet::SharedBottom(SharedBottom {
                embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                bottom: ini.mlp(x_dim, &self.bottom_dims, p, false),
                towers: (0..self.tasks)
                    .map(|_| ini.mlp(h_dim, &self.tower_dims, p, true))
                    .collect(),
            }),
            MtlModelKind::OMoE | MtlModelKind::MMoE => {
                let gates = if self.kind == MtlModelKind::OMoE {
                    1
                } else {
                    self.tasks
                };
                MtlNet::MixtureOfExperts(MixtureOfExperts {
                    embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                    experts: (0..self.num_experts.max(1))
                        .map(|_| ini.mlp(x_dim, &self.bottom_dims, p, false))
                        .collect(),
                    gates: (0..gates)
                        .map(|_| ini.linear(x_dim, self.num_experts.max(1)))
                        .collect(),
                    towers: (0..self.tasks)
                        .map(|_| ini.mlp(h_dim, &self.tower_dims, p, true))
                        .collect(),
                })
            }
            MtlModelKind::Ple => {
                let (shared, specific) = self.ple_experts();
                let mut d_in = x_dim;
                let n = self.bottom_dims.len();
                let levels = self
                    .bottom_dims
                    .iter()
                    .enumerate()
                    .map(|(l, &w)| {
                        let expert = |ini: &mut Initializer| ini.mlp(d_in, &[w], p, false);
                        let level = PleLevel {
                            task_experts: (0..self.tasks)
                                .map(|_| (0..specific).map(|_| expert(&mut ini)).collect())
                                .collect(),
                            shared_experts: (0..shared).map(|_| expert(&mut ini)).collect(),
                            task_gates: (0..self.tasks)
                                .map(|_| ini.linear(d_in, specific + shared))
                                .collect(),
                            shared_gate: (l + 1 < n)
                                .then(|| ini.linear(d_in, shared + self.tasks * specific)),
                        };
                        d_in = w;
                        level
                    })
                    .collect();
                MtlNet::Ple(Ple {
                    embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                    levels,
                    towers: (0..self.tasks)
                        .map(|_| ini.mlp(h_dim, &self.tower_dims, p, true))
                        .collect(),
                })
            }
            MtlModelKind::Aitm => MtlNet::Aitm(Aitm {
                embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                bottoms: (0..self.tasks)
                    .map(|_| ini.mlp(x_dim, &self.bottom_dims, p, false))
                    .collect(),
                transfer: (1..self.tasks).map(|_| ini.linear(h_dim, h_dim)).collect(),
                value: ini.linear(h_dim, h_dim),
                key: ini.linear(h_dim, h_dim),
                query: ini.linear(h_dim, h_dim),
                towers: (0..self.tasks)
                    .map(|_| ini.mlp(h_dim, &self.tower_dims, p, true))
                    .collect(),
                calibration: self.aitm_calibration,
            }),
            MtlModelKind::MetaHeac => MtlNet::MetaHeac(MetaHeacMtl {
                embedding: ini.field_embedding(&self.field_sizes, self.numerical, d),
                task_embedding: ini.embedding(self.tasks, d, 1.0),
                experts: (0..self.num_experts.max(1))
                    .map(|_| ini.mlp(x_dim, &self.bottom_dims, p, false))
                    .collect(),
                expert_gate: ini.linear(2 * d, self.num_experts.max(1)),
                critics: (0..self.num_critics.max(1))
                    .map(|_| ini.mlp(h_dim, &self.tower_dims, p, true))
                    .collect(),
                critic_gate: ini.linear(2 * d, self.num_critics.max(1)),
                critic_mean: self.critic_combine == CriticCombine::Mean,
            }),
        };
        MtlModel {
            net,
            tasks: self.tasks,
        }
    }

    /// PLE's experts per level: shared ones and ones per task, half of `num_experts` each (MTReclib).
    pub fn ple_experts(&self) -> (usize, usize) {
        let half = (self.num_experts / 2).max(1);
        (half, half)
    }
}

/// Per-task AUC and logloss of predicted probabilities.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskScore {
    pub auc: Option<f64>,
    pub logloss: f64,
}

/// AUC and logloss (log clamped at −100, as PyTorch's BCE) of `p` for 0/1 `labels`.
pub fn task_score(labels: &[u8], p: &[f32]) -> TaskScore {
    let y: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
    let n = p.len().max(1) as f64;
    let logloss = y
        .iter()
        .zip(p)
        .map(|(&y, &p)| {
            let q = if y { p as f64 } else { 1.0 - p as f64 };
            -(q.ln().max(-100.0))
        })
        .sum::<f64>()
        / n;
    TaskScore {
        auc: auc(&y, p),
        logloss,
    }
}
