//! Offline stage: meta-train the general model on many past campaigns (MAML, as MetaHeac).
//!
//! Each iteration samples `task_count` training campaigns. For each task, a support set ("understand the
//! campaign") adapts θ with plain SGD, θ'_i = θ − α ∇L_S(θ), and a query set ("find its audience") scores
//! θ'_i; the general weights take one Adam step on the mean query loss.

use crate::data::{Batch, Campaign, Row, UserTable};
use crate::grads;
use crate::model::{Inputs, MetaHeac};
use crate::sparse::{AdamConstants, SparseEmbeddings, Touched};
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

/// How the embedding tables take the outer Adam step.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum EmbeddingUpdate {
    /// Every row of every table, every step (the reference, PyTorch's dense Adam).
    Dense,
    /// Only the rows the meta-batch touched (lazy Adam, [`crate::sparse`]); each iteration computes on
    /// those rows alone.
    Lazy,
}

/// Whether the online stage starts from the similar campaigns' prior ([`crate::similar`]).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum SimilarRule {
    /// The validation campaigns decide ([`crate::schedule::choose_similar`]).
    Choose,
    /// Always where there is a prior (`k` > 0 by leaving each training campaign out), whatever the
    /// validation campaigns measured; their comparison is still made and kept.
    Always,
    /// Never: no library in the record.
    Never,
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
    #[config(default = "EmbeddingUpdate::Lazy")]
    pub embedding_update: EmbeddingUpdate,
    /// Threads the tasks of a meta-batch are spread over (0: one per core; 1 on wasm). Each task's
    /// gradient is its own graph and they are summed in task order, so the count does not change the
    /// result. For CPU devices.
    #[config(default = 0)]
    pub threads: usize,
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
    /// Patience never stops the run before the iterations have read the training rows this many
    /// times over (support and query rows: `task_count` × (`support_size` + `query_size`) an
    /// iteration). Patience counts validations, so at large scale it gave up before the data had been
    /// read once: on the paper-scale world (3.3M training rows, 640 iterations a pass) it stopped at
    /// iteration 200 with the untrained weights kept (validation AUC 0.7900), where training on
    /// reached 0.7947 at iteration 650 and 0.7988 at 900. Where a pass is shorter than the patience
    /// (every development world: 8–39 iterations) nothing changes.
    #[config(default = 1.0)]
    pub val_min_passes: f64,
    /// Most iterations with validation (the cap of the early-stopping schedule).
    #[config(default = 5000)]
    pub max_iterations: usize,
    /// Stage-1 rows kept per validation campaign (half to fine-tune on, half to score).
    #[config(default = 2000)]
    pub val_max_rows: usize,
    /// Most steps of each validation fine-tune (they run at every validation).
    #[config(default = 100)]
    pub val_max_steps: usize,
    /// Score both halves of each validation campaign (fine-tune on one, score the other, then the
    /// other way round; the campaign's AUC is the mean of the two), not one: every kept row is scored
    /// once, so the curve that picks the kept iteration is less noisy, for twice the validation time.
    #[config(default = true)]
    pub val_crossfit: bool,
    /// After training, let the validation campaigns choose the online stage's recipe for this general
    /// model among [`crate::finetune::OnlineRecipe::ALL`] (by mean AUC, as they chose the kept
    /// iteration); the record carries the choice and the online stage applies it. One online rule
    /// does not suit every kind of data: over 5 seeds on the development worlds the choice moved cold
    /// mean AUC by −0.004 to +0.024, significantly up on InstEval, the survey, t-skew and t-tokens
    /// (README, "What the product's defaults are").
    #[config(default = true)]
    pub online_select: bool,
    /// ... with the average of two runs among them ([`crate::finetune::OnlineRecipe::Averaged`]),
    /// scored from the fine-tunes of the two single runs it averages, so it costs no fine-tune more.
    /// Off: the single-run recipes only, as before it was one.
    #[config(default = true)]
    pub online_average: bool,
    /// ... keeping the default recipe (that average where it is tried) unless another leads it by
    /// more than this many standard errors of the paired difference over the validation campaigns
    /// ([`crate::schedule::OnlineChoice::pick`]); 0: the highest mean AUC.
    #[config(default = 0.0)]
    pub online_margin: f64,
    /// After training, also train a general model with one expert (the "w/o HE" configuration) on the
    /// same campaigns and keep whichever the validation campaigns score higher, each fine-tuned with
    /// the online recipe it chose (the configured experts unless one is clearly ahead: the margin below). The experts pay where
    /// campaigns differ in kind and cost where every campaign follows one relation (README, "Hybrid
    /// experts, world by world"); validation tells the two apart on most worlds. The one-expert model
    /// trains in about a third of the time. Needs validation campaigns and more than one expert.
    #[config(default = true)]
    pub select_experts: bool,
    /// ... choosing one expert only when its lead over the validation campaigns exceeds this many
    /// standard errors of the paired difference (see [`crate::schedule::Ahead::clears`]).
    #[config(default = 1.0)]
    pub select_experts_margin: f64,
    /// Once the experts are chosen, whether the online stage starts from the prior of the past
    /// campaigns most like the new one in the wide part; where it does, the record carries every
    /// training campaign's LR (the library) and every online stage folds the prior in. Needs a wide
    /// part. Always by default (unless leaving each training campaign out chooses k = 0): over 5
    /// seeds on twelve development worlds the prior raised MetaHeac's cold mean AUC on ten (mean
    /// +0.0063; independent world +0.023, InstEval +0.022, flights +0.012) and cost nowhere
    /// significantly (abortion −0.003, p 0.63), while letting the validation campaigns choose
    /// ([`SimilarRule::Choose`]) declined it where it paid most (README, "Similar past campaigns, in
    /// the product"). The validation comparison is made and kept either way.
    #[config(default = "SimilarRule::Always")]
    pub similar: SimilarRule,
    /// ... keeping the prior where its lead over the validation campaigns exceeds this many
    /// standard errors of the paired difference (0: a higher mean, on two campaigns at least).
    #[config(default = 0.0)]
    pub select_similar_margin: f64,
    /// Where the online stage takes that prior, choose its recipe again with the prior folded in
    /// ([`crate::schedule::choose_online_with_prior`]): the recipe chosen at the end of the fit was
    /// chosen without it, on the rows the kept iteration was chosen on with the configured recipe;
    /// this one is chosen as the online stage will run, on the validation campaigns split again. The
    /// record carries it (and the earlier choice beside it).
    #[config(default = false)]
    pub online_with_prior: bool,
    /// Once validation has chosen (the kept iteration, the online recipe, the experts), meta-train
    /// the kept configuration again from its initial weights on every training campaign, the
    /// validation ones included, for as many passes over the rows as the kept iteration made
    /// ([`crate::schedule::refit`]). Off by default: over 5 seeds on five worlds it moved MetaHeac's
    /// cold mean AUC by −0.004 to +0.007 (significant only on MovieLens) and its cold P@5% down on the
    /// three synthetic ones, up on the two real ones; the recipe and experts were chosen for the model
    /// validation measured, not for the refit (README, "Offline: refit on the validation campaigns
    /// too?").
    #[config(default = false)]
    pub val_refit: bool,
}

impl MetaConfig {
    /// The official code's offline stage: one epoch, no validation.
    pub fn reference() -> Self {
        Self::new()
            .with_online_select(false)
            .with_select_experts(false)
            .with_similar(SimilarRule::Never)
            .with_val_fraction(0.0)
            .with_id_dropout(0.0)
            .with_embedding_update(EmbeddingUpdate::Dense)
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
    /// Always `Some` between calls; taken while the optimizer consumes it. With lazy embedding
    /// updates its tables are stale while `stale` is set (`sparse` holds them).
    model: Option<MetaHeac>,
    pub config: MetaConfig,
    optim: ModuleOptimizer,
    /// The embedding tables and their Adam state, with [`EmbeddingUpdate::Lazy`].
    sparse: Option<SparseEmbeddings>,
    stale: bool,
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
    /// The next lazy first-order meta-batch, drawn during the last step (see [`Drawn`]).
    ahead: Option<Drawn>,
    /// Scratch for renumbering it, beside the tables' own (in use at the same time).
    ahead_slot: Vec<u32>,
}

/// A meta-batch drawn ahead of its step, on a copy of the stream, while the step before computes
/// (its draw reads no weight). It stands for the draw the step would make only if the stream is still
/// at `before` and the draw's settings are as they were, so a checkpoint (which saves the stream, not
/// this), a restored state or a changed configuration draws afresh.
struct Drawn {
    before: chacha20::SerializedRngState,
    after: TrainRng,
    key: DrawKey,
    rows: usize,
    batches: Vec<Batch>,
    touched: Vec<Touched>,
}

/// The settings a meta-batch's draw reads.
#[derive(PartialEq)]
struct DrawKey {
    task_count: usize,
    support_size: usize,
    query_size: usize,
    disjoint: bool,
    id_dropout: u64,
}

impl DrawKey {
    fn of(c: &MetaConfig) -> Self {
        DrawKey {
            task_count: c.task_count,
            support_size: c.support_size,
            query_size: c.query_size,
            disjoint: c.disjoint_support_query,
            id_dropout: c.id_dropout.to_bits(),
        }
    }
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

/// A copy of `rng` at its position (the stream type has no `Clone`).
fn fork(rng: &TrainRng) -> TrainRng {
    TrainRng::deserialize_state(&rng.serialize_state())
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
        let sparse = (config.embedding_update == EmbeddingUpdate::Lazy).then(|| {
            SparseEmbeddings::of(&model, AdamConstants::with_epsilon(config.adam_epsilon))
        });
        MetaTrainer {
            model: Some(model),
            config,
            optim,
            sparse,
            stale: false,
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
            ahead: None,
            ahead_slot: Vec::new(),
        }
    }

    /// The general weights (with lazy embedding updates, the tables are written back first).
    pub fn model(&mut self) -> &MetaHeac {
        if self.stale
            && let (Some(sparse), Some(model)) = (&self.sparse, self.model.take())
        {
            self.model = Some(sparse.write_into(model));
        }
        self.stale = false;
        self.general()
    }

    /// The general weights as held, whose tables are stale under lazy updates.
    fn general(&self) -> &MetaHeac {
        self.model.as_ref().expect("model present between steps")
    }

    /// Which embedding rows the training campaigns touch.
    pub fn seen(&self) -> crate::unknown::Seen {
        crate::unknown::Seen::of(self.general(), self.users, &self.tasks)
    }

    /// Replaces the general weights (the schedule puts back the best validated ones).
    pub fn set_model(&mut self, model: MetaHeac) {
        if let Some(sparse) = &mut self.sparse {
            sparse.load(&model);
        }
        self.model = Some(model);
        self.stale = false;
    }

    pub fn into_model(mut self) -> MetaHeac {
        self.model();
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

    /// Adam's state (moments and step count per parameter, keyed by parameter id) as burnpack bytes;
    /// with lazy embedding updates, that of the dense layers.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, String> {
        self.optim
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| format!("saving the optimizer's state: {e:?}"))
    }

    /// The embedding tables' Adam state with lazy updates (`None` with dense ones).
    pub fn embedding_optimizer_bytes(&self) -> Option<Vec<u8>> {
        self.sparse.as_ref().map(SparseEmbeddings::state_bytes)
    }

    /// Continues from a checkpoint: its position, its weights (`model`, loaded from a record, which
    /// keeps the parameter ids Adam's state is keyed by) and Adam's state (`embeddings`: that of the
    /// tables, with lazy updates).
    pub fn restore(
        &mut self,
        state: &TrainerState,
        model: MetaHeac,
        optimizer: &[u8],
        embeddings: Option<&[u8]>,
    ) -> Result<(), String> {
        match (&mut self.sparse, embeddings) {
            (Some(sparse), Some(bytes)) => {
                sparse.load(&model);
                sparse.restore_state(bytes)?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err("the checkpoint has no lazy embedding updates' Adam state".into());
            }
            (None, Some(_)) => {
                return Err("the checkpoint is of a run with lazy embedding updates".into());
            }
        }
        self.stale = false;
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

    /// Iterations that read the training rows once over ([`MetaConfig::val_min_passes`]).
    pub fn iterations_per_pass(&self) -> usize {
        let c = &self.config;
        let per = match c.meta_grad {
            MetaGrad::None => c.plain_batch,
            _ => c.task_count * (c.support_size + c.query_size),
        };
        self.training_rows().div_ceil(per.max(1))
    }

    /// The first iteration at which patience may stop a validated run: `val_min_passes` passes.
    pub fn patience_floor(&self) -> usize {
        (self.config.val_min_passes.max(0.0) * self.iterations_per_pass() as f64).ceil() as usize
    }

    pub fn total_iterations(&self) -> usize {
        self.iterations_per_epoch() * self.config.epochs
    }

    /// A task's rows, gathered on the host, with id dropout.
    fn batch(&self, task: &Campaign, rows: &[Row], rng: &mut TrainRng) -> Batch {
        let mut b = Batch::gather(self.users, &self.multi_lens, &task.ad, rows);
        b.drop_ids(self.config.id_dropout, rng);
        b
    }

    /// The model an iteration computes on and its batches, uploaded: the general model, or with lazy
    /// embedding updates its compact copy holding only the rows the batches touch (their ids are
    /// renumbered to match).
    fn work(&mut self, mut batches: Vec<Batch>) -> (MetaHeac, Option<Touched>, Vec<Inputs>) {
        let touched = self.sparse.as_mut().map(|s| s.compact(&mut batches));
        let work = self.rework(&touched);
        let inputs = batches
            .iter()
            .map(|b| Inputs::new(b, &self.device))
            .collect();
        (work, touched, inputs)
    }

    /// The model to compute on for rows `touched` (see [`Self::work`]).
    fn rework(&self, touched: &Option<Touched>) -> MetaHeac {
        match (&self.sparse, touched) {
            (Some(sparse), Some(t)) => sparse.model(self.general(), t),
            _ => self.general().clone(),
        }
    }

    /// Distinct tasks drawn with probability ∝ weight (Efraimidis–Spirakis keys u^(1/w)).
    fn sample_tasks(&self, rng: &mut TrainRng) -> Vec<usize> {
        let k = self.config.task_count.min(self.tasks.len());
        let mut keys: Vec<(f64, usize)> = self
            .weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                (u.ln() / w.max(f64::MIN_POSITIVE), i)
            })
            .collect();
        keys.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        keys.into_iter().take(k).map(|(_, i)| i).collect()
    }

    /// Support and query rows of a task: independent samples without replacement (or disjoint halves).
    /// A campaign with fewer rows than asked gives all its rows (the reference would crash).
    fn support_query(&self, task: usize, rng: &mut TrainRng) -> (Vec<Row>, Vec<Row>) {
        let rows = &self.tasks[task].stage1;
        let (s, q) = (self.config.support_size, self.config.query_size);
        let draw = |n: usize, rng: &mut TrainRng| -> Vec<Row> {
            let mut idx: Vec<Row> = rows.sample(rng, n.min(rows.len())).copied().collect();
            idx.shuffle(rng);
            idx
        };
        if self.config.disjoint_support_query {
            let mut all = draw(s + q, rng);
            let split = if all.len() >= s + q { s } else { all.len() / 2 };
            let query = all.split_off(split);
            (all, query)
        } else {
            let support = draw(s, rng);
            let query = draw(q, rng);
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
        let (n, rows, batches) = self.with_stream(|t, rng| {
            let picked = t.sample_tasks(rng);
            let mut batches = Vec::with_capacity(picked.len());
            let mut rows = 0;
            for &k in &picked {
                let (mut s, q) = t.support_query(k, rng);
                s.extend_from_slice(&q);
                rows += s.len();
                batches.push(t.batch(t.tasks[k], &s, rng));
            }
            (picked.len() as f32, rows, batches)
        });
        let (work, touched, inputs) = self.work(batches);
        let tasks = per_task(inputs.len(), self.threads(), |i| {
            let leaf = grads::releaf(work.clone());
            let loss = leaf.loss(&inputs[i]).div_scalar(n);
            let value = loss.clone().into_scalar::<f32>();
            (GradientsParams::from_grads(loss.backward(), &leaf), value)
        });
        if tasks.is_empty() {
            return StepStats::default();
        }
        let value = tasks.iter().map(|t| t.1).sum();
        let grads = sum(&work, tasks.iter().map(|t| &t.0));
        self.apply(&work, touched.as_ref(), grads);
        StepStats {
            support_loss: value,
            query_loss: f32::NAN,
            rows,
        }
    }

    /// Threads for the tasks of a meta-batch (see [`MetaConfig::threads`]).
    fn threads(&self) -> usize {
        threads(self.config.threads)
    }

    /// The outer Adam step from gradients of `work` (see [`Self::work`]): lazy on the touched rows of
    /// the tables, if so configured, and burn's on the rest.
    fn apply(&mut self, work: &MetaHeac, touched: Option<&Touched>, mut grads: GradientsParams) {
        if let (Some(sparse), Some(t)) = (&mut self.sparse, touched) {
            sparse.step(self.config.outer_lr, work, t, &mut grads);
            self.stale = true;
        }
        self.dense_step(grads);
    }

    /// burn's Adam step on the general model from `grads` (with lazy updates, the dense layers' only).
    fn dense_step(&mut self, grads: GradientsParams) {
        let model = self.model.take().expect("model present between steps");
        self.model = Some(self.optim.step(self.config.outer_lr, model, grads));
    }

    /// One task of a first-order meta-step at `work` (a copy of θ, or its compact copy), in two stages
    /// (see [`per_task_staged`]). This first one: θ' from the support set, still attached to the task's
    /// own leaves of θ, so tasks share no graph.
    fn first_order_support(config: &MetaConfig, work: MetaHeac, support: &Inputs) -> Adapted {
        let leaf = grads::releaf(work);
        let (fast, _, support_loss) = Self::adapt(config, &leaf, support, false);
        Adapted {
            leaf,
            fast,
            support_loss,
        }
    }

    /// The second stage of a first-order task: the query loss at θ' (over `n` tasks), differentiated at
    /// the task's leaves of θ. Returns that gradient, the first support loss and the query loss.
    fn first_order_query(adapted: Adapted, query: &Inputs, n: f32) -> (GradientsParams, f32, f32) {
        let Adapted {
            leaf,
            fast,
            support_loss,
        } = adapted;
        let lq = fast.loss(query).div_scalar(n);
        let value = lq.clone().into_scalar::<f32>();
        (
            GradientsParams::from_grads(lq.backward(), &leaf),
            support_loss,
            value,
        )
    }

    /// Inner loop from θ: `inner_steps` SGD steps on the support set. Returns the adapted model, still
    /// attached to θ (first-order path), the detached points θ_0..θ_{K−1} (for the second-order path), and
    /// the mean support loss of the first step.
    fn adapt(
        config: &MetaConfig,
        model: &MetaHeac,
        support: &Inputs,
        keep_points: bool,
    ) -> (MetaHeac, Vec<MetaHeac>, f32) {
        let alpha = config.inner_lr as f32;
        let mut fast = model.clone();
        let mut points = Vec::new();
        let mut first_loss = f32::NAN;
        for k in 0..config.inner_steps.max(1) {
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

    /// The sampled tasks' support and query batches, in pairs, and the rows they hold.
    fn meta_batch(&mut self) -> (usize, Vec<Batch>) {
        self.with_stream(|t, rng| t.draw_meta_batch(rng))
    }

    /// `draw(self, stream)`, the trainer's stream advanced by what `draw` takes from it (the drawing
    /// methods read the trainer and take the stream apart).
    fn with_stream<R>(&mut self, draw: impl FnOnce(&Self, &mut TrainRng) -> R) -> R {
        let mut rng = fork(&self.rng);
        let out = draw(self, &mut rng);
        self.rng = rng;
        out
    }

    /// [`Self::meta_batch`] from the stream `rng`.
    fn draw_meta_batch(&self, rng: &mut TrainRng) -> (usize, Vec<Batch>) {
        let picked = self.sample_tasks(rng);
        let mut batches = Vec::with_capacity(2 * picked.len());
        let mut rows = 0;
        for t in picked {
            let (s, q) = self.support_query(t, rng);
            rows += s.len() + q.len();
            let task = self.tasks[t];
            batches.push(self.batch(task, &s, rng));
            batches.push(self.batch(task, &q, rng));
        }
        (rows, batches)
    }

    /// The next lazy first-order meta-batch, drawn from a copy of the stream (which stays where it
    /// is: see [`Drawn`]), with its rows renumbered into `slot`, a scratch of
    /// [`SparseEmbeddings::compact_into`].
    fn draw_ahead(&self, slot: &mut Vec<u32>) -> Drawn {
        let before = self.rng.serialize_state();
        let mut after = fork(&self.rng);
        let (rows, mut batches) = self.draw_meta_batch(&mut after);
        let sparse = self.sparse.as_ref().expect("lazy embedding updates");
        let touched = batches
            .chunks_mut(2)
            .map(|pair| sparse.compact_into(slot, pair))
            .collect();
        Drawn {
            before,
            after,
            key: DrawKey::of(&self.config),
            rows,
            batches,
            touched,
        }
    }

    /// The lazy first-order meta-batch to compute: the one drawn ahead if it was drawn from this
    /// stream position under this configuration, otherwise drawn now.
    fn lazy_meta_batch(&mut self) -> (usize, Vec<Batch>, Vec<Touched>) {
        let drawn = match self.ahead.take() {
            Some(d)
                if d.before == self.rng.serialize_state() && d.key == DrawKey::of(&self.config) =>
            {
                d
            }
            _ => {
                let mut slot = std::mem::take(&mut self.ahead_slot);
                let d = self.draw_ahead(&mut slot);
                self.ahead_slot = slot;
                d
            }
        };
        self.rng = drawn.after;
        (drawn.rows, drawn.batches, drawn.touched)
    }

    fn first_order_step(&mut self) -> StepStats {
        if self.sparse.is_some() {
            return self.first_order_lazy();
        }
        let (rows, batches) = self.meta_batch();
        let n = (batches.len() / 2) as f32;
        let (work, touched, inputs) = self.work(batches);
        let config = &self.config;
        let tasks = per_task_staged(
            inputs.len() / 2,
            self.threads(),
            |i| Self::first_order_support(config, work.clone(), &inputs[2 * i]),
            |i, adapted| Self::first_order_query(adapted, &inputs[2 * i + 1], n),
        );
        if tasks.is_empty() {
            return StepStats::default();
        }
        let support_loss = tasks.iter().map(|t| t.1 / n).sum();
        let query_loss = tasks.iter().map(|t| t.2).sum();
        let grads = sum(&work, tasks.iter().map(|t| &t.0));
        self.apply(&work, touched.as_ref(), grads);
        StepStats {
            support_loss,
            query_loss,
            rows,
        }
    }

    /// [`Self::first_order_step`] with lazy embedding updates: each task computes on a compact model of
    /// its own rows (on the paper-scale world a third of the meta-batch's union, so a third of the
    /// table-sized gradients and fast weights), built on its own thread, and the tables' gradients are
    /// summed on the host (`SparseEmbeddings::merge`) into the union model's: the same sums in the same
    /// order, so the same step (tested against the union model).
    ///
    /// The next meta-batch is drawn meanwhile, by the first worker left without a stage to run
    /// ([`per_task_staged`]'s `idle`): drawing does not depend on the weights, and it is used only if
    /// the stream is where it was drawn from (see [`Drawn`]), so the step is the same either way.
    fn first_order_lazy(&mut self) -> StepStats {
        let (rows, batches, touched) = self.lazy_meta_batch();
        let n = (batches.len() / 2) as f32;
        let threads = self.threads();
        let mut slot = std::mem::take(&mut self.ahead_slot);
        let this = &*self;
        let (config, general, device) = (&this.config, this.general(), &this.device);
        let sparse = this.sparse.as_ref().expect("lazy embedding updates");
        let (tasks, ahead) = per_task_staged_idle(
            touched.len(),
            threads,
            |i| {
                // The task's model and inputs are built on the thread that runs its stage.
                let work = sparse.model(general, &touched[i]);
                let support = Inputs::new(&batches[2 * i], device);
                Self::first_order_support(config, work, &support)
            },
            |i, adapted| {
                let query = Inputs::new(&batches[2 * i + 1], device);
                let (mut g, ls, value) = Self::first_order_query(adapted, &query, n);
                // To the host on the task's thread (a compact copy keeps θ's parameter ids).
                let tables = SparseEmbeddings::take_grads(general, &mut g);
                (g, tables, ls, value)
            },
            || this.draw_ahead(&mut slot),
        );
        self.ahead = ahead;
        self.ahead_slot = slot;
        if tasks.is_empty() {
            return StepStats::default();
        }
        let support_loss = tasks.iter().map(|t| t.2 / n).sum();
        let query_loss = tasks.iter().map(|t| t.3).sum();
        let dense = sum(self.general(), tasks.iter().map(|t| &t.0));
        let parts = touched
            .into_iter()
            .zip(tasks)
            .map(|(t, task)| (t, task.1))
            .collect();
        let sparse = self.sparse.as_mut().expect("lazy embedding updates");
        let (union, tables) = sparse.merge(parts);
        sparse.step_rows(self.config.outer_lr, &union, tables);
        self.stale = true;
        // burn's Adam on the dense layers stays on this thread after the tables' step: run beside it
        // on a pool worker, it gave other results on wgpu (tests/model.rs, `wgpu_agrees_with_flex`).
        self.dense_step(dense);
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
        let (s, q, batches) = self.with_stream(|t, rng| {
            let (s, q) = t.support_query(task, rng);
            let campaign = t.tasks[task];
            let batches = vec![t.batch(campaign, &s, rng), t.batch(campaign, &q, rng)];
            (s, q, batches)
        });
        let (work, touched, inputs) = self.work(batches);
        let (support, query) = (&inputs[0], &inputs[1]);
        let loss = |m: &MetaHeac, x: &Inputs| m.loss(x).into_scalar::<f32>();
        let support_before = loss(&work, support);
        let query_before = loss(&work, query);
        let (fast, _, _) = Self::adapt(&self.config, &work, support, false);
        let support_after = loss(&fast, support);
        let lq = fast.loss(query);
        let query_adapted = lq.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(lq.backward(), &work);
        self.apply(&work, touched.as_ref(), grads);
        let (fast, _, _) = Self::adapt(&self.config, &self.rework(&touched), support, false);
        let query_after_meta = loss(&fast, query);
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
    /// At the general weights, whose ids `support` and `query` must hold (not renumbered).
    pub fn exact_task_gradient(
        &mut self,
        support: &Inputs,
        query: &Inputs,
    ) -> (GradientsParams, f32, f32) {
        self.model();
        Self::task_gradient(&self.config, self.general(), support, query)
    }

    /// [`Self::exact_task_gradient`] at `model`.
    fn task_gradient(
        config: &MetaConfig,
        model: &MetaHeac,
        support: &Inputs,
        query: &Inputs,
    ) -> (GradientsParams, f32, f32) {
        let forward = Self::second_order_forward(config, model, support, query);
        Self::second_order_back(config, forward, support)
    }

    /// The first half of [`Self::task_gradient`]: the inner steps from `model` and the query
    /// gradient at θ_K.
    fn second_order_forward(
        config: &MetaConfig,
        model: &MetaHeac,
        support: &Inputs,
        query: &Inputs,
    ) -> Unrolled {
        let (fast, points, support_loss) = Self::adapt(config, model, support, true);
        let fast = grads::releaf(fast);
        let lq = fast.loss(query);
        let query_loss = lq.clone().into_scalar::<f32>();
        let v = GradientsParams::from_grads(lq.backward(), &fast);
        Unrolled {
            points,
            v,
            support_loss,
            query_loss,
        }
    }

    /// The second half: `v` back through the inner steps (two support gradients each). Returns the
    /// meta-gradient, the first support loss and the query loss.
    fn second_order_back(
        config: &MetaConfig,
        unrolled: Unrolled,
        support: &Inputs,
    ) -> (GradientsParams, f32, f32) {
        let alpha = config.inner_lr as f32;
        let Unrolled {
            points,
            mut v,
            support_loss: ls,
            query_loss: lq_value,
        } = unrolled;
        for point in points.iter().rev() {
            let vnorm = grads::norm(point, &v);
            if vnorm == 0.0 {
                break;
            }
            let eps = (config.hvp_step / vnorm) as f32;
            let plus = Self::support_grad(&grads::shift(point.clone(), &v, eps, true), support);
            let minus = Self::support_grad(&grads::shift(point.clone(), &v, -eps, true), support);
            let c = alpha / (2.0 * eps);
            v = grads::combine(point, &[(1.0, &v), (-c, &plus), (c, &minus)]);
        }
        (v, ls, lq_value)
    }

    fn second_order_step(&mut self) -> StepStats {
        let (rows, batches) = self.meta_batch();
        let n = (batches.len() / 2) as f32;
        let (work, touched, inputs) = self.work(batches);
        let config = &self.config;
        // In halves of about equal cost for one inner step (two passes each), as the first-order step.
        let tasks = per_task_staged(
            inputs.len() / 2,
            self.threads(),
            |i| Self::second_order_forward(config, &work, &inputs[2 * i], &inputs[2 * i + 1]),
            |i, unrolled| Self::second_order_back(config, unrolled, &inputs[2 * i]),
        );
        let support_loss = tasks.iter().map(|t| t.1 / n).sum();
        let query_loss = tasks.iter().map(|t| t.2 / n).sum();
        if !tasks.is_empty() {
            let terms: Vec<(f32, &GradientsParams)> =
                tasks.iter().map(|t| (1.0 / n, &t.0)).collect();
            let g = grads::combine(&work, &terms);
            self.apply(&work, touched.as_ref(), g);
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
        self.plain_cursor = end;
        let (work, touched, inputs) = self.work(vec![batch]);
        let loss = work.loss(&inputs[0]);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &work);
        self.apply(&work, touched.as_ref(), grads);
        StepStats {
            support_loss: value,
            query_loss: f32::NAN,
            rows,
        }
    }
}

/// A task after its support stage (see [`MetaTrainer::first_order_support`]).
struct Adapted {
    /// The task's own leaves of θ.
    leaf: MetaHeac,
    /// θ', attached to `leaf`.
    fast: MetaHeac,
    /// The mean support loss of the first inner step.
    support_loss: f32,
}

/// A task of an exact second-order step after its forward half (see
/// [`MetaTrainer::second_order_forward`]).
struct Unrolled {
    /// The detached points θ_0..θ_{K−1} of the inner steps.
    points: Vec<MetaHeac>,
    /// ∇L_Q(θ_K).
    v: GradientsParams,
    support_loss: f32,
    query_loss: f32,
}

/// [`MetaConfig::threads`] resolved: 0 is one per core (1 on wasm).
pub(crate) fn threads(configured: usize) -> usize {
    match configured {
        0 if cfg!(target_arch = "wasm32") => 1,
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// `f(0)..f(n − 1)`, in order, computed on up to `threads` threads.
///
/// Native builds run the tasks on a rayon pool of `threads` workers: burn-flex's products and
/// element-wise kernels split their work on the pool they are called from, so a worker whose tasks are
/// done helps with another's (a meta-batch of 5 tasks on 2 cores would otherwise leave one core idle
/// for a fifth of it), and the kernels' own splitting does not put a second set of threads on the cores
/// beside the tasks' (measured: "Meta-training throughput" in the README).
pub(crate) fn per_task<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    #[cfg(feature = "native")]
    {
        on_pool(threads, || {
            use rayon::prelude::*;
            // One task per split, so idle workers can steal whole tasks.
            (0..n).into_par_iter().with_max_len(1).map(&f).collect()
        })
    }
    #[cfg(not(feature = "native"))]
    {
        let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
        std::thread::scope(|s| {
            let f = &f;
            let workers: Vec<_> = (0..threads)
                .map(|j| {
                    s.spawn(move || {
                        (j..n)
                            .step_by(threads)
                            .map(|i| (i, f(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for w in workers {
                let done = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                for (i, t) in done {
                    out[i] = Some(t);
                }
            }
        });
        out.into_iter()
            .map(|t| t.expect("every task computed"))
            .collect()
    }
}

/// `second(i, first(i))` for `i` in `0..n`, in order, on up to `threads` threads: [`per_task`] for
/// work done in two stages, where the second needs the first's result.
///
/// Native builds start every first stage before any second one, and a second stage as soon as its
/// first is done, so the work is spread evenly: five first-order tasks on two cores ran as three
/// rounds of whole tasks, the third with one core idle; as ten half-tasks they fill both cores to
/// the end. Each item's stages compute what they computed together, so the results do not change.
pub(crate) fn per_task_staged<A: Send, T: Send>(
    n: usize,
    threads: usize,
    first: impl Fn(usize) -> A + Sync,
    second: impl Fn(usize, A) -> T + Sync,
) -> Vec<T> {
    per_task_staged_idle(n, threads, first, second, || ()).0
}

/// [`per_task_staged`], and `idle()` run by the first worker left with no stage to start (on native
/// builds with more than one thread; elsewhere not at all, `None`), while the others finish theirs.
pub(crate) fn per_task_staged_idle<A: Send, T: Send, I: Send>(
    n: usize,
    threads: usize,
    first: impl Fn(usize) -> A + Sync,
    second: impl Fn(usize, A) -> T + Sync,
    idle: impl FnOnce() -> I + Send,
) -> (Vec<T>, Option<I>) {
    let threads = threads.clamp(1, n.max(1));
    #[cfg(feature = "native")]
    if threads > 1 {
        use std::collections::VecDeque;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let started = AtomicUsize::new(0);
        let ready: Mutex<VecDeque<(usize, A)>> = Mutex::new(VecDeque::with_capacity(n));
        let done: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let idle = Mutex::new(Some(idle));
        let idled: Mutex<Option<I>> = Mutex::new(None);
        // A worker takes the next first stage while any is left, then the oldest second stage whose
        // first is done; it stops when neither is there. Nobody waits for a first stage: the worker
        // that finishes one finds its second stage queued on its next turn, so none is left behind.
        let work = || {
            loop {
                let i = started.fetch_add(1, Ordering::Relaxed);
                if i < n {
                    let a = first(i);
                    ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((i, a));
                    continue;
                }
                let next = ready.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, a)) = next else {
                    let job = idle.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(job) = job {
                        *idled.lock().unwrap_or_else(|e| e.into_inner()) = Some(job());
                    }
                    break;
                };
                let t = second(i, a);
                *done[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            }
        };
        on_pool(threads, || {
            rayon::scope(|s| {
                for _ in 1..threads {
                    s.spawn(|_| work());
                }
                work();
            })
        });
        let done = done
            .into_iter()
            .map(|t| {
                t.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .expect("every item computed")
            })
            .collect();
        return (done, idled.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    let _ = idle;
    (per_task(n, threads, |i| second(i, first(i))), None)
}

/// Runs `op` on a rayon pool of `threads` workers: the global pool where it has that many, otherwise
/// one kept for that count (built once; a pool per meta-step would start threads every step). Called
/// from a pool's worker (tasks within tasks: validation's fine-tunes score their rows), `op` runs on
/// that pool, which is already spread over the cores.
#[cfg(feature = "native")]
fn on_pool<R: Send>(threads: usize, op: impl FnOnce() -> R + Send) -> R {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() == threads {
        return op();
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pool = {
        let mut pools = POOLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let pool = pools.entry(threads).or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool"),
            )
        });
        Arc::clone(pool)
    };
    pool.install(op)
}

/// The sum of gradients of `module`'s parameters, added in the order given.
fn sum<'g>(module: &MetaHeac, grads: impl Iterator<Item = &'g GradientsParams>) -> GradientsParams {
    let terms: Vec<(f32, &GradientsParams)> = grads.map(|g| (1.0, g)).collect();
    grads::combine(module, &terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every item's second stage gets its own first stage's result, each stage runs once, and the
    /// results come back in item order, whatever the thread count.
    #[test]
    fn staged_items_come_back_in_order() {
        for n in [0, 1, 2, 5, 9] {
            for threads in [1, 2, 3, 8] {
                let (firsts, seconds) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let out = per_task_staged(
                    n,
                    threads,
                    |i| {
                        firsts.fetch_add(1, Ordering::Relaxed);
                        // Uneven stages, so the order in which they finish varies.
                        std::thread::sleep(std::time::Duration::from_micros(200 * (i % 3) as u64));
                        10 * i
                    },
                    |i, a| {
                        seconds.fetch_add(1, Ordering::Relaxed);
                        (i, a + 1)
                    },
                );
                let want: Vec<(usize, usize)> = (0..n).map(|i| (i, 10 * i + 1)).collect();
                assert_eq!(out, want, "n {n}, threads {threads}");
                assert_eq!(firsts.into_inner(), n);
                assert_eq!(seconds.into_inner(), n);
            }
        }
    }
}
