//! The page's state and its one reducer.

use crate::engine::{Assets, BackendChoice, GpuProbe, RunEvent};
use lookalike_core::finetune::GateWeights;
use lookalike_core::meta::Walkthrough;
use lookalike_core::online::{self, OnlineConfig, OnlinePlan, SeedMatch};
use std::collections::BTreeMap;
use std::rc::Rc;
use yew::Reducible;

/// Seed of the page's random choices (non-seed sampling, hold-out, shuffles): runs are reproducible.
pub const SEED: u64 = 2021;

/// How the teaching comparison fine-tunes its three starting points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TeachRule {
    /// The product's online rule (as the expansion itself): wide part fitted, early stopping.
    #[default]
    Product,
    /// The paper's (the official code's): 2 epochs of Adam on everything, no fit, no hold-out, so the
    /// starting point is all that differs.
    Paper,
}

/// The fine-tuning runs the page can hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunKind {
    /// The expansion itself.
    Main,
    /// Teaching: from the meta-trained general model.
    Meta,
    /// Teaching: from a general model trained without meta-learning.
    NoMeta,
    /// Teaching: from random weights.
    Scratch,
}

impl RunKind {
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Main => "fine-tune",
            RunKind::Meta => "meta-trained (MetaHeac)",
            RunKind::NoMeta => "pre-trained without meta-learning",
            RunKind::Scratch => "from scratch",
        }
    }

    pub fn color(self) -> &'static str {
        match self {
            RunKind::Main | RunKind::Meta => "#2563eb",
            RunKind::NoMeta => "#d97706",
            RunKind::Scratch => "#6b7280",
        }
    }

    pub const TEACH: [RunKind; 3] = [RunKind::Meta, RunKind::NoMeta, RunKind::Scratch];
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum RunStatus {
    #[default]
    Idle,
    Starting,
    Running,
    Paused,
    Scoring {
        done: usize,
        total: usize,
    },
    Done,
    Failed(String),
}

impl RunStatus {
    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Idle => "idle",
            RunStatus::Starting => "starting",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Scoring { .. } => "scoring",
            RunStatus::Done => "done",
            RunStatus::Failed(_) => "failed",
        }
    }

    pub fn active(&self) -> bool {
        matches!(
            self,
            RunStatus::Starting
                | RunStatus::Running
                | RunStatus::Paused
                | RunStatus::Scoring { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunState {
    pub generation: u64,
    pub status: RunStatus,
    pub backend: String,
    pub total_steps: usize,
    pub epoch: usize,
    /// (step, loss)
    pub losses: Vec<(usize, f32)>,
    /// (step, held-out-seed AUC)
    pub aucs: Vec<(usize, f64)>,
    pub train_seconds: Option<f64>,
    pub steps_per_second: Option<f64>,
    /// The online rule's set-up and where it stopped, in words.
    pub rule: Option<String>,
    pub stop: Option<String>,
    /// AUC on a demo campaign's labelled stage-2 rows.
    pub truth_auc: Option<f64>,
    pub gates_before: Option<GateWeights>,
    pub gates_after: Option<GateWeights>,
    /// Candidate scores, in `plan.candidates` order.
    pub scores: Option<Rc<Vec<f32>>>,
    pub score_seconds: Option<f64>,
    /// Page time (ms since it opened) when the audience was ready.
    pub done_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Expand,
    Gates,
    Teach,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeedsState {
    /// File name (or "real seeds of campaign …").
    pub name: String,
    pub found: Option<Rc<SeedMatch>>,
    pub error: Option<String>,
    /// The demo campaign whose real seeds these are.
    pub from_campaign: Option<usize>,
}

#[derive(Clone)]
pub struct AppState {
    /// Bumped by every action: what context consumers compare to know they must re-render.
    pub version: u64,
    pub loading: Option<String>,
    pub load_error: Option<String>,
    pub assets: Option<Rc<Assets>>,
    pub gpu: Option<GpuProbe>,
    pub choice: BackendChoice,
    /// Selected demo campaign (index into the pool's campaigns), `None` for hand-set features.
    pub campaign: Option<usize>,
    pub ad: Vec<u32>,
    pub seeds: SeedsState,
    pub plan: Option<Rc<OnlinePlan>>,
    pub epochs: usize,
    pub lr: f64,
    /// The online rule of the teaching comparison.
    pub teach_rule: TeachRule,
    pub audience_pct: f64,
    pub runs: BTreeMap<RunKind, RunState>,
    pub next_generation: u64,
    pub campaign_gates: Option<Result<Rc<Vec<GateWeights>>, String>>,
    pub walk: Option<Result<Rc<Walkthrough>, String>>,
    pub walk_task: usize,
    pub walk_phase: usize,
    pub tab: Tab,
}

impl Default for AppState {
    fn default() -> Self {
        // The product's online defaults: at most this many epochs, this learning rate.
        let online = lookalike_core::finetune::FineTuneConfig::new();
        AppState {
            version: 0,
            loading: Some("loading the general model and the candidate pool…".into()),
            load_error: None,
            assets: None,
            gpu: None,
            choice: BackendChoice::Auto,
            campaign: None,
            ad: Vec::new(),
            seeds: SeedsState::default(),
            plan: None,
            epochs: online.epochs,
            lr: online.lr,
            teach_rule: TeachRule::default(),
            audience_pct: 5.0,
            runs: BTreeMap::new(),
            next_generation: 1,
            campaign_gates: None,
            walk: None,
            walk_task: 0,
            walk_phase: 0,
            tab: Tab::Expand,
        }
    }
}

impl PartialEq for AppState {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

/// The state handle every component reads from context.
pub type Store = yew::UseReducerHandle<AppState>;

pub enum Action {
    Loading(String),
    LoadFailed(String),
    Loaded(Rc<Assets>),
    Gpu(GpuProbe),
    Choose(BackendChoice),
    PickCampaign(Option<usize>),
    SetAd {
        field: usize,
        id: u32,
    },
    Seeds {
        name: String,
        result: Result<SeedMatch, String>,
        from_campaign: Option<usize>,
    },
    SetEpochs(usize),
    SetLr(f64),
    SetTeachRule(TeachRule),
    SetAudience(f64),
    Queue {
        kind: RunKind,
        generation: u64,
    },
    Run {
        kind: RunKind,
        generation: u64,
        event: RunEvent,
    },
    ResetRun(RunKind),
    CampaignGates(Result<Rc<Vec<GateWeights>>, String>),
    WalkTask(usize),
    Walk(Result<Rc<Walkthrough>, String>),
    WalkPhase(usize),
    Tab(Tab),
}

impl AppState {
    pub fn run(&self, kind: RunKind) -> Option<&RunState> {
        self.runs.get(&kind)
    }

    /// Labelled stage-2 rows of the selected demo campaign, when the seeds are its real ones.
    pub fn truth_rows(&self) -> Option<Rc<Vec<lookalike_core::data::Row>>> {
        let assets = self.assets.as_ref()?;
        let c = self
            .seeds
            .from_campaign
            .filter(|&c| Some(c) == self.campaign)?;
        let rows = &assets.pool.campaigns.get(c)?.stage2;
        (!rows.is_empty()).then(|| Rc::new(rows.clone()))
    }

    fn replan(&mut self) {
        self.plan = None;
        self.seeds.error = None;
        let (Some(assets), Some(found)) = (&self.assets, &self.seeds.found) else {
            return;
        };
        match online::plan(assets.pool.users.len(), found, &OnlineConfig::new(), SEED) {
            Ok(p) => self.plan = Some(Rc::new(p)),
            Err(e) => self.seeds.error = Some(format!("{}: {e}", self.seeds.name)),
        }
    }

    /// Any change of seeds or campaign makes earlier results stale.
    fn clear_runs(&mut self) {
        for kind in self.runs.keys() {
            crate::engine::cancel(*kind);
        }
        self.runs.clear();
    }
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        s.version += 1;
        match action {
            Action::Loading(m) => s.loading = Some(m),
            Action::LoadFailed(e) => {
                s.loading = None;
                s.load_error = Some(e);
            }
            Action::Loaded(assets) => {
                s.clear_runs();
                s.loading = None;
                s.load_error = None;
                // Default campaign: the first held-out (cold, then hot) one.
                let pick = assets
                    .pool
                    .campaigns
                    .iter()
                    .position(|c| c.role == lookalike_core::data::Role::Cold)
                    .or_else(|| {
                        assets
                            .pool
                            .campaigns
                            .iter()
                            .position(|c| c.role != lookalike_core::data::Role::Train)
                    })
                    .or(if assets.pool.campaigns.is_empty() {
                        None
                    } else {
                        Some(0)
                    });
                s.ad = match pick {
                    Some(c) => assets.pool.campaigns[c].ad.clone(),
                    None => vec![0; assets.header.schema.ad.len()],
                };
                s.campaign = pick;
                s.campaign_gates = None;
                s.walk = None;
                s.walk_task = 0;
                s.walk_phase = 0;
                s.assets = Some(assets);
                // Seeds matched against another pool mean nothing here.
                s.seeds = SeedsState::default();
                s.plan = None;
            }
            Action::Gpu(g) => s.gpu = Some(g),
            Action::Choose(c) => s.choice = c,
            Action::PickCampaign(c) => {
                s.clear_runs();
                s.campaign = c;
                if let (Some(c), Some(a)) = (c, &s.assets) {
                    s.ad = a.pool.campaigns[c].ad.clone();
                }
            }
            Action::SetAd { field, id } => {
                s.clear_runs();
                s.campaign = None;
                if field < s.ad.len() {
                    s.ad[field] = id;
                }
            }
            Action::Seeds {
                name,
                result,
                from_campaign,
            } => {
                s.clear_runs();
                s.seeds = SeedsState {
                    name,
                    from_campaign,
                    ..Default::default()
                };
                match result {
                    Ok(found) => {
                        s.seeds.found = Some(Rc::new(found));
                        s.replan();
                    }
                    Err(e) => s.seeds.error = Some(e),
                }
            }
            Action::SetEpochs(e) => s.epochs = e.clamp(1, 50),
            Action::SetTeachRule(r) => s.teach_rule = r,
            Action::SetLr(lr) => {
                if lr.is_finite() && lr > 0.0 {
                    s.lr = lr;
                    if let Some(c) = crate::engine::control(RunKind::Main) {
                        c.borrow_mut().lr = lr;
                    }
                }
            }
            Action::SetAudience(p) => s.audience_pct = p.clamp(1.0, 10.0),
            Action::Queue { kind, generation } => {
                s.next_generation = s.next_generation.max(generation + 1);
                s.runs.insert(
                    kind,
                    RunState {
                        generation,
                        status: RunStatus::Starting,
                        ..Default::default()
                    },
                );
            }
            Action::Run {
                kind,
                generation,
                event,
            } => {
                let Some(r) = s.runs.get_mut(&kind).filter(|r| r.generation == generation) else {
                    return self;
                };
                apply(r, event);
            }
            Action::ResetRun(kind) => {
                crate::engine::cancel(kind);
                s.runs.remove(&kind);
            }
            Action::CampaignGates(g) => s.campaign_gates = Some(g),
            Action::WalkTask(t) => {
                s.walk_task = t;
                s.walk = None;
                s.walk_phase = 0;
            }
            Action::Walk(w) => {
                s.walk = Some(w);
                s.walk_phase = 1;
            }
            Action::WalkPhase(p) => s.walk_phase = p,
            Action::Tab(t) => s.tab = t,
        }
        Rc::new(s)
    }
}

fn apply(r: &mut RunState, event: RunEvent) {
    match event {
        RunEvent::Started {
            paused,
            backend,
            total_steps,
            rule,
        } => {
            r.backend = backend;
            r.total_steps = total_steps;
            r.rule = Some(rule);
            if r.status == RunStatus::Starting {
                r.status = if paused {
                    RunStatus::Paused
                } else {
                    RunStatus::Running
                };
            }
        }
        RunEvent::Gates { after, gates } => {
            if after {
                r.gates_after = Some(gates);
            } else {
                r.gates_before = Some(gates);
            }
        }
        RunEvent::Loss { step, epoch, loss } => {
            r.losses.push((step, loss));
            r.epoch = epoch;
        }
        RunEvent::HeldOutAuc { step, auc } => r.aucs.push((step, auc)),
        RunEvent::Paused(p) => {
            if matches!(r.status, RunStatus::Running | RunStatus::Paused) {
                r.status = if p {
                    RunStatus::Paused
                } else {
                    RunStatus::Running
                };
            }
        }
        RunEvent::Trained {
            seconds,
            steps_per_second,
            stop,
            truth_auc,
            scoring_next,
        } => {
            r.stop = Some(stop);
            r.train_seconds = Some(seconds);
            r.steps_per_second = Some(steps_per_second);
            r.truth_auc = truth_auc;
            // A run that scores the pool next is not done yet (Start stays disabled).
            r.status = match scoring_next {
                Some(total) => RunStatus::Scoring { done: 0, total },
                None => RunStatus::Done,
            };
        }
        RunEvent::Scoring { done, total } => r.status = RunStatus::Scoring { done, total },
        RunEvent::Scored { scores, seconds } => {
            r.scores = Some(scores);
            r.score_seconds = Some(seconds);
            r.status = RunStatus::Done;
            r.done_ms = Some(crate::engine::now_ms());
        }
        RunEvent::Failed(e) => r.status = RunStatus::Failed(e),
    }
}
