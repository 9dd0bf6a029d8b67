//! Offline stage: meta-train the general model on many past campaigns (MAML, as MetaHeac).
//!
//! Each iteration samples `task_count` training campaigns. For each task, a support set ("understand the
//! campaign") adapts θ with plain SGD, θ'_i = θ − α ∇L_S(θ), and a query set ("find its audience") scores
//! θ'_i; the general weights take one Adam step on the mean query loss.

use crate::data::{Batch, Campaign, Row, UserTable};
use crate::grads;
use crate::model::{Inputs, MetaHeac};
use burn::config::Config;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};

/// The trainer's random stream: ChaCha12, the algorithm of rand's `StdRng` (same seed, same draws),
/// used directly because its position can be saved and restored (checkpoints).
type TrainRng = chacha20::ChaCha12Rng;

/// How the meta-gradient is computed.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum MetaGrad {
    /// First-order MAML: ∇_θ L_Q(θ') with the inner gradient held constant.
    FirstOrder,
    /// Exact MAML gradient (I − α∇²L_S) ∇L_Q(θ'), the Hessian-vector product by central finite differences.
    SecondOrder,
    /// No meta-learning: plain mini-batch training on all training rows.
    None,
    /// No meta-learning with MetaHeac's batch make-up (the "w/o Meta" ablation): the same sampled tasks
    /// and support + query rows, one loss at θ, no inner step; only meta-learning differs.
    NoAdaptation,
}

/// How training campaigns are drawn for a meta-batch.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum TaskSampling {
    /// p ∝ number of stage-1 rows (reference `normal`).
    Proportional,
    /// p ∝ √rows.
    Sqrt,
    /// Uniform.
    Uniform,
}

#[derive(Config, Debug)]
pub struct MetaConfig {
    /// Campaigns per meta-batch.
    #[config(default = 5)]
    pub task_count: usize,
    #[config(default = 512)]
    pub support_size: usize,
    #[config(default = 512)]
    pub query_size: usize,
    /// Draw support and query without overlap (the reference lets them overlap).
    #[config(default = false)]
    pub disjoint_support_query: bool,
    #[config(default = "TaskSampling::Proportional")]
    pub task_sampling: TaskSampling,
    /// Inner SGD learning rate α.
    #[config(default = 2e-4)]
    pub inner_lr: f64,
    #[config(default = 1)]
    pub inner_steps: usize,
    /// Outer Adam learning rate β.
    #[config(default = 1e-3)]
    pub outer_lr: f64,
    /// Adam ε (PyTorch's default; burn's is 1e-5).
    #[config(default = 1e-8)]
    pub adam_epsilon: f32,
    #[config(default = "MetaGrad::FirstOrder")]
    pub meta_grad: MetaGrad,
    /// An epoch is ceil(training rows / `rows_per_iteration`) iterations (reference: 512).
    #[config(default = 1)]
    pub epochs: usize,
    #[config(default = 512)]
    pub rows_per_iteration: usize,
    /// Batch size of the `none` mode.
    #[config(default = 512)]
    pub plain_batch: usize,
    /// Size of the parameter-space step of the finite-difference Hessian-vector product.
    #[config(default = 1e-3)]
    pub hvp_step: f64,
    /// Id dropout: probability that a single-valued user id or an ad id of a training row is replaced
    /// by the unknown id 0, which then learns what a new campaign or an unseen value looks like (new
    /// campaigns' own ids are never trained otherwise).
    #[config(default = 0.1)]
    pub id_dropout: f64,
    /// Fraction of the training campaigns held out to decide when to stop (0: run `epochs` epochs,
    /// the reference schedule).
    #[config(default = 0.2)]
    pub val_fraction: f64,
    /// A validation every this many iterations.
    #[config(default = 50)]
    pub val_every: usize,
    /// Stop after this many validations without a better validation AUC; the best weights are kept.
    #[config(default = 4)]
    pub val_patience: usize,
    /// Most iterations with validation (the cap of the early-stopping schedule).
    #[config(default = 5000)]
    pub max_iterations: usize,
    /// Stage-1 rows kept per validation campaign (half to fine-tune on, half to score).
    #[config(default = 2000)]
    pub val_max_rows: usize,
    /// Most steps of each validation fine-tune (they run at every validation).
    #[config(default = 100)]
    pub val_max_steps: usize,
}

impl MetaConfig {
    /// The official code's offline stage: one epoch, no validation.
    pub fn reference() -> Self {
        Self::new().with_val_fraction(0.0).with_id_dropout(0.0)
    }
}

/// Losses of one iteration.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    /// Mean support (inner) loss; equals the training loss in `none` mode.
    pub support_loss: f32,
    /// Mean query (meta) loss; NaN in `none` mode.
    pub query_loss: f32,
    /// Rows read by the forward passes of this iteration.
    pub rows: usize,
}

/// One task's meta-step in slow motion (see [`MetaTrainer::walkthrough`]).
#[derive(Debug, Clone)]
pub struct Walkthrough {
    pub aid: String,
    pub support: Vec<Row>,
    pub query: Vec<Row>,
    /// Support loss L_S at θ and at the adapted θ'.
    pub support_before: f32,
    pub support_after: f32,
    /// Query loss L_Q at θ and at θ'.
    pub query_before: f32,
    pub query_adapted: f32,
    /// L_Q at θ' again, once θ took its meta-step (θ' re-adapted from the new θ).
    pub query_after_meta: f32,
}

/// Meta-trainer over a set of training campaigns.
pub struct MetaTrainer<'a> {
    /// Always `Some` between calls; taken while the optimizer consumes it.
    model: Option<MetaHeac>,
    pub config: MetaConfig,
    optim: ModuleOptimizer,
    users: &'a UserTable,
    tasks: Vec<&'a Campaign>,
    weights: Vec<f64>,
    multi_lens: Vec<usize>,
    device: Device,
    rng: TrainRng,
    /// `none` mode: shuffled (task, row) pairs and the cursor into them.
    plain_order: Vec<(u32, u32)>,
    plain_cursor: usize,
    /// `none` mode: the stream's position when `plain_order` was shuffled (a checkpoint rebuilds the
    /// order from it rather than storing it).
    plain_shuffled_at: Option<Vec<u8>>,
    pub iteration: usize,
}

/// What a checkpoint needs, beside the weights and Adam's state, to continue a trainer exactly.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    pub iteration: usize,
    /// The random stream's state (ChaCha12 seed, stream and word position).
    pub rng: Vec<u8>,
    /// `none` mode: the stream's state when the current pass's order was shuffled, and the cursor.
    pub plain_shuffled_at: Option<Vec<u8>>,
    pub plain_cursor: usize,
}

fn rng_from(state: &[u8]) -> Result<TrainRng, String> {
    let state: &chacha20::SerializedRngState = state
        .try_into()
        .map_err(|_| format!("a random-stream state of {} bytes, not 49", state.len()))?;
    Ok(TrainRng::deserialize_state(state))
}

impl<'a> MetaTrainer<'a> {
    /// `model` must live on an autodiff device. Campaigns without stage-1 rows are skipped.
    pub fn new(
        model: MetaHeac,
        config: MetaConfig,
        users: &'a UserTable,
        campaigns: &[&'a Campaign],
        seed: u64,
    ) -> Self {
        let tasks: Vec<&Campaign> = campaigns
            .iter()
            .copied()
            .filter(|c| !c.stage1.is_empty())
            .collect();
        let weights = tasks
            .iter()
            .map(|c| {
                let n = c.stage1.len() as f64;
                match config.task_sampling {
                    TaskSampling::Proportional => n,
                    TaskSampling::Sqrt => n.sqrt(),
                    TaskSampling::Uniform => 1.0,
                }
            })
            .collect();
        let optim = AdamConfig::new().with_epsilon(config.adam_epsilon).init();
        let multi_lens = model.multi_lens.clone();
        let device = model.device();
        MetaTrainer {
            model: Some(model),
            config,
            optim,
            users,
            tasks,
            weights,
            multi_lens,
            device,
            rng: TrainRng::seed_from_u64(seed),
            plain_order: Vec::new(),
            plain_cursor: 0,
            plain_shuffled_at: None,
            iteration: 0,
        }
    }

    pub fn model(&self) -> &MetaHeac {
        self.model.as_ref().expect("model present between steps")
    }

    /// Which embedding rows the training campaigns touch.
    pub fn seen(&self) -> crate::unknown::Seen {
        crate::unknown::Seen::of(self.model(), self.users, &self.tasks)
    }

    /// Replaces the general weights (the schedule puts back the best validated ones).
    pub fn set_model(&mut self, model: MetaHeac) {
        self.model = Some(model);
    }

    pub fn into_model(self) -> MetaHeac {
        self.model.expect("model present between steps")
    }

    /// The trainer's position, for a checkpoint (with [`Self::optimizer_bytes`] and the weights).
    pub fn state(&self) -> TrainerState {
        TrainerState {
            iteration: self.iteration,
            rng: self.rng.serialize_state().to_vec(),
            plain_shuffled_at: self.plain_shuffled_at.clone(),
            plain_cursor: self.plain_cursor,
        }
    }

    /// Adam's state (moments and step count per parameter, keyed by parameter id) as burnpack bytes.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, String> {
        self.optim
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| format!("saving the optimizer's state: {e:?}"))
    }

    /// Continues from a checkpoint: its position, its weights (`model`, loaded from a record, which
    /// keeps the parameter ids Adam's state is keyed by) and Adam's state.
    pub fn restore(
        &mut self,
        state: &TrainerState,
        model: MetaHeac,
        optimizer: &[u8],
    ) -> Result<(), String> {
        let fresh = AdamConfig::new()
            .with_epsilon(self.config.adam_epsilon)
            .init();
        let optim = std::mem::replace(&mut self.optim, fresh);
        self.optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(optimizer.to_vec()))
            .map_err(|e| format!("the optimizer's state: {e:?}"))?;
        self.model = Some(model);
        self.iteration = state.iteration;
        self.rng = rng_from(&state.rng)?;
        self.plain_cursor = state.plain_cursor;
        self.plain_shuffled_at = state.plain_shuffled_at.clone();
        self.plain_order = match &state.plain_shuffled_at {
            Some(at) => {
                let mut order = self.plain_pairs();
                order.shuffle(&mut rng_from(at)?);
                order
            }
            None => Vec::new(),
        };
        Ok(())
    }

    /// Every (task, stage-1 row) pair, in order (`none` mode shuffles them once per pass).
    fn plain_pairs(&self) -> Vec<(u32, u32)> {
        self.tasks
            .iter()
            .enumerate()
            .flat_map(|(t, c)| (0..c.stage1.len() as u32).map(move |r| (t as u32, r)))
            .collect()
    }

    pub fn training_rows(&self) -> usize {
        self.tasks.iter().map(|c| c.stage1.len()).sum()
    }

    /// Iterations in one epoch.
    pub fn iterations_per_epoch(&self) -> usize {
        let per = match self.config.meta_grad {
            MetaGrad::None => self.config.plain_batch,
            _ => self.config.rows_per_iteration,
        };
        self.training_rows().div_ceil(per.max(1))
    }

    pub fn total_iterations(&self) -> usize {
        self.iterations_per_epoch() * self.config.epochs
    }

    fn batch(&mut self, task: &Campaign, rows: &[Row]) -> Inputs {
        let mut b = Batch::gather(self.users, &self.multi_lens, &task.ad, rows);
        b.drop_ids(self.config.id_dropout, &mut self.rng);
        Inputs::new(&b, &self.device)
    }

    /// Distinct tasks drawn with probability ∝ weight (Efraimidis–Spirakis keys u^(1/w)).
    fn sample_tasks(&mut self) -> Vec<usize> {
        let k = self.config.task_count.min(self.tasks.len());
        let mut keys: Vec<(f64, usize)> = self
            .weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let u: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
                (u.ln() / w.max(f64::MIN_POSITIVE), i)
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keys.into_iter().take(k).map(|(_, i)| i).collect()
    }

    /// Support and query rows of a task: independent samples without replacement (or disjoint halves).
    /// A campaign with fewer rows than asked gives all its rows (the reference would crash).
    fn support_query(&mut self, task: usize) -> (Vec<Row>, Vec<Row>) {
        let rows = &self.tasks[task].stage1;
        let (s, q) = (self.config.support_size, self.config.query_size);
        let draw = |n: usize, rng: &mut TrainRng| -> Vec<Row> {
            let mut idx: Vec<Row> = rows.sample(rng, n.min(rows.len())).copied().collect();
            idx.shuffle(rng);
            idx
        };
        if self.config.disjoint_support_query {
            let mut all = draw(s + q, &mut self.rng);
            let split = if all.len() >= s + q { s } else { all.len() / 2 };
            let query = all.split_off(split);
            (all, query)
        } else {
            let support = draw(s, &mut self.rng);
            let query = draw(q, &mut self.rng);
            (support, query)
        }
    }

    /// One iteration: a meta-batch (or a plain mini-batch in `none` mode) and one Adam step.
    pub fn step(&mut self) -> StepStats {
        self.iteration += 1;
        match self.config.meta_grad {
            MetaGrad::None => self.plain_step(),
            MetaGrad::FirstOrder => self.first_order_step(),
            MetaGrad::SecondOrder => self.second_order_step(),
            MetaGrad::NoAdaptation => self.no_adaptation_step(),
        }
    }

    /// The "w/o Meta" step: tasks and rows drawn exactly as a meta-step, one loss at θ on support ∪ query.
    fn no_adaptation_step(&mut self) -> StepStats {
        let picked = self.sample_tasks();
        let n = picked.len() as f32;
        let mut total = None;
        let mut rows = 0;
        for t in picked {
            let (mut s, q) = self.support_query(t);
            s.extend_from_slice(&q);
            rows += s.len();
            let task = self.tasks[t];
            let x = self.batch(task, &s);
            let l = self.model().loss(&x).div_scalar(n);
            total = Some(match total {
                Some(a) => a + l,
                None => l,
            });
        }
        let Some(total) = total else {
            return StepStats::default();
        };
        let value = total.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(total.backward(), self.model());
        self.apply(grads);
        StepStats {
            support_loss: value,
            query_loss: f32::NAN,
            rows,
        }
    }

    fn apply(&mut self, grads: GradientsParams) {
        let model = self.model.take().expect("model present between steps");
        self.model = Some(self.optim.step(self.config.outer_lr, model, grads));
    }

    /// Inner loop from θ: `inner_steps` SGD steps on the support set. Returns the adapted model, still
    /// attached to θ (first-order path), the detached points θ_0..θ_{K−1} (for the second-order path), and
    /// the mean support loss of the first step.
    fn adapt(
        &self,
        model: &MetaHeac,
        support: &Inputs,
        keep_points: bool,
    ) -> (MetaHeac, Vec<MetaHeac>, f32) {
        let alpha = self.config.inner_lr as f32;
        let mut fast = model.clone();
        let mut points = Vec::new();
        let mut first_loss = f32::NAN;
        for k in 0..self.config.inner_steps.max(1) {
            // The gradient is taken at the current fast weights and enters θ' as a constant.
            let leaf = grads::releaf(fast.clone());
            let loss = leaf.loss(support);
            if k == 0 {
                first_loss = loss.clone().into_scalar::<f32>();
            }
            let g = GradientsParams::from_grads(loss.backward(), &leaf);
            if keep_points {
                points.push(leaf);
            }
            fast = grads::shift(fast, &g, -alpha, false);
        }
        (fast, points, first_loss)
    }

    fn first_order_step(&mut self) -> StepStats {
        let picked = self.sample_tasks();
        let n = picked.len() as f32;
        let mut support_loss = 0.0;
        let mut meta_loss = None;
        let mut rows = 0;
        for t in picked {
            let (s, q) = self.support_query(t);
            rows += s.len() + q.len();
            let task = self.tasks[t];
            let (support, query) = (self.batch(task, &s), self.batch(task, &q));
            let (fast, _, ls) = self.adapt(self.model(), &support, false);
            support_loss += ls / n;
            let lq = fast.loss(&query).div_scalar(n);
            meta_loss = Some(match meta_loss {
                Some(m) => m + lq,
                None => lq,
            });
        }
        let Some(meta_loss) = meta_loss else {
            return StepStats::default();
        };
        let query_loss = meta_loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(meta_loss.backward(), self.model());
        self.apply(grads);
        StepStats {
            support_loss,
            query_loss,
            rows,
        }
    }

    /// One first-order meta-step on a single task, taken apart for teaching: the support set adapts θ to
    /// θ' ("understand the campaign"), the query set scores θ' ("find its audience"), and the general
    /// weights take the Adam step on that query loss. Reads losses synchronously (CPU devices).
    pub fn walkthrough(&mut self, task: usize) -> Walkthrough {
        let task = task.min(self.tasks.len().saturating_sub(1));
        let (s, q) = self.support_query(task);
        let campaign = self.tasks[task];
        let (support, query) = (self.batch(campaign, &s), self.batch(campaign, &q));
        let loss = |m: &MetaHeac, x: &Inputs| m.loss(x).into_scalar::<f32>();
        let support_before = loss(self.model(), &support);
        let query_before = loss(self.model(), &query);
        let (fast, _, _) = self.adapt(self.model(), &support, false);
        let support_after = loss(&fast, &support);
        let lq = fast.loss(&query);
        let query_adapted = lq.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(lq.backward(), self.model());
        self.apply(grads);
        let (fast, _, _) = self.adapt(self.model(), &support, false);
        let query_after_meta = loss(&fast, &query);
        Walkthrough {
            aid: self.tasks[task].aid.clone(),
            support: s,
            query: q,
            support_before,
            support_after,
            query_before,
            query_adapted,
            query_after_meta,
        }
    }

    /// The training campaigns, in task order.
    pub fn tasks(&self) -> &[&'a Campaign] {
        &self.tasks
    }

    /// Support-loss gradient at a given point (a model whose parameters are leaves).
    fn support_grad(model: &MetaHeac, support: &Inputs) -> GradientsParams {
        let leaf = grads::releaf(model.clone());
        GradientsParams::from_grads(leaf.loss(support).backward(), &leaf)
    }

    /// Exact MAML meta-gradient of one task by back-propagating v = ∇L_Q(θ_K) through the inner steps:
    /// v ← v − α H_S(θ_k) v for k = K−1..0, with H v ≈ (∇L_S(θ+εv) − ∇L_S(θ−εv)) / 2ε.
    pub fn exact_task_gradient(
        &self,
        support: &Inputs,
        query: &Inputs,
    ) -> (GradientsParams, f32, f32) {
        let alpha = self.config.inner_lr as f32;
        let (fast, points, ls) = self.adapt(self.model(), support, true);
        let fast = grads::releaf(fast);
        let lq = fast.loss(query);
        let lq_value = lq.clone().into_scalar::<f32>();
        let mut v = GradientsParams::from_grads(lq.backward(), &fast);
        for point in points.iter().rev() {
            let vnorm = grads::norm(point, &v);
            if vnorm == 0.0 {
                break;
            }
            let eps = (self.config.hvp_step / vnorm) as f32;
            let plus = Self::support_grad(&grads::shift(point.clone(), &v, eps, true), support);
            let minus = Self::support_grad(&grads::shift(point.clone(), &v, -eps, true), support);
            let c = alpha / (2.0 * eps);
            v = grads::combine(point, &[(1.0, &v), (-c, &plus), (c, &minus)]);
        }
        (v, ls, lq_value)
    }

    fn second_order_step(&mut self) -> StepStats {
        let picked = self.sample_tasks();
        let n = picked.len() as f32;
        let mut acc: Option<GradientsParams> = None;
        let (mut support_loss, mut query_loss, mut rows) = (0.0, 0.0, 0);
        for t in picked {
            let (s, q) = self.support_query(t);
            rows += s.len() + q.len();
            let task = self.tasks[t];
            let (support, query) = (self.batch(task, &s), self.batch(task, &q));
            let (g, ls, lq) = self.exact_task_gradient(&support, &query);
            support_loss += ls / n;
            query_loss += lq / n;
            acc = Some(match acc {
                Some(a) => grads::combine(self.model(), &[(1.0, &a), (1.0 / n, &g)]),
                None => grads::combine(self.model(), &[(1.0 / n, &g)]),
            });
        }
        if let Some(g) = acc {
            self.apply(g);
        }
        StepStats {
            support_loss,
            query_loss,
            rows,
        }
    }

    fn plain_step(&mut self) -> StepStats {
        if self.plain_cursor >= self.plain_order.len() {
            self.plain_order = self.plain_pairs();
            self.plain_shuffled_at = Some(self.rng.serialize_state().to_vec());
            self.plain_order.shuffle(&mut self.rng);
            self.plain_cursor = 0;
        }
        let end = (self.plain_cursor + self.config.plain_batch).min(self.plain_order.len());
        let picked = &self.plain_order[self.plain_cursor..end];
        let rows = picked.len();
        // Group the mini-batch by campaign (each campaign has its own ad ids).
        let mut by_task: Vec<Vec<Row>> = vec![Vec::new(); self.tasks.len()];
        for &(t, r) in picked {
            by_task[t as usize].push(self.tasks[t as usize].stage1[r as usize]);
        }
        let parts: Vec<Batch> = by_task
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(t, rows)| Batch::gather(self.users, &self.multi_lens, &self.tasks[t].ad, rows))
            .collect();
        let mut batch = Batch::concat(&parts);
        batch.drop_ids(self.config.id_dropout, &mut self.rng);
        let batch = Inputs::new(&batch, &self.device);
        self.plain_cursor = end;
        let loss = self.model().loss(&batch);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), self.model());
        self.apply(grads);
        StepStats {
            support_loss: value,
            query_loss: f32::NAN,
            rows,
        }
    }
}
