//! What the page computes, with no UI in it: loading the record and pool, choosing the device, and the
//! fine-tuning job (the same core code as `lookalike expand`). Jobs run as browser tasks that yield
//! between steps and report to the reducer.

use crate::state::{Action, RunKind, TeachRule};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Reflect, Uint8Array};
use lookalike_core::burn::module::Module;
use lookalike_core::burn::tensor::Device;
use lookalike_core::data::Row;
use lookalike_core::expansion::score_async;
use lookalike_core::finetune::{FineTuneConfig, FineTuner, OnlineRecipe, gate_weights_async};
use lookalike_core::fold::{PASS, PoolScorer};
use lookalike_core::metrics::auc;
use lookalike_core::model::MetaHeac;
use lookalike_core::online::OnlinePlan;
use lookalike_core::pool::Pool;
use lookalike_core::record::{self, RecordHeader};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use yew::UseReducerDispatcher;

use crate::state::AppState;

/// Files larger than this are refused before they are read (the page holds everything in memory).
pub const MAX_UPLOAD_BYTES: f64 = 512.0 * 1024.0 * 1024.0;
/// Rows per forward pass when scoring: small enough that one pass never freezes the page for long
/// on the CPU backend (about 0.2 s), large enough to keep throughput.
const SCORE_CHUNK: usize = 512;
/// Rows between progress reports while scoring the pool.
const REPORT_EVERY: usize = 4096;

/// The general model and the candidate pool the page works with.
pub struct Assets {
    pub record: Rc<Vec<u8>>,
    pub record_name: String,
    pub header: RecordHeader,
    /// A general model trained without meta-learning, for the teaching comparison (demo only).
    pub baseline: Option<Rc<Vec<u8>>>,
    pub pool: Pool,
    pub pool_name: String,
    pub pool_bytes: usize,
    pub index: HashMap<u64, u32>,
}

impl PartialEq for Assets {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.record, &other.record) && self.pool_name == other.pool_name
    }
}

impl Assets {
    pub fn new(
        record: Vec<u8>,
        record_name: String,
        baseline: Option<Vec<u8>>,
        pool_bytes: Vec<u8>,
        pool_name: String,
    ) -> Result<Assets, String> {
        let (header, _) =
            record::read_header(&record).map_err(|e| format!("{record_name}: {e}"))?;
        let pool = Pool::from_bytes(&pool_bytes).map_err(|e| format!("{pool_name}: {e}"))?;
        pool.check_schema(&header.schema)
            .map_err(|e| format!("{pool_name} and {record_name}: {e}"))?;
        let baseline = baseline.filter(|b| {
            record::read_header(b)
                .map(|(h, _)| h.schema.fingerprint() == pool.header.schema_fingerprint)
                .unwrap_or(false)
        });
        let index = lookalike_core::online::uid_index(&pool.users);
        Ok(Assets {
            record: Rc::new(record),
            record_name,
            header,
            baseline: baseline.map(Rc::new),
            pool_bytes: pool_bytes.len(),
            pool,
            pool_name,
            index,
        })
    }

    /// Pool indices of the campaigns a meta-trainer would use (training role, with stage-1 rows), in
    /// the order the walkthrough numbers them.
    pub fn training_campaigns(&self) -> Vec<usize> {
        (0..self.pool.campaigns.len())
            .filter(|&i| {
                let c = &self.pool.campaigns[i];
                c.role == lookalike_core::data::Role::Train && !c.stage1.is_empty()
            })
            .collect()
    }
}

pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url}: cannot fetch ({e:?})"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| format!("{url}: no response"))?;
    if !resp.ok() {
        return Err(format!(
            "{url}: HTTP {} {}",
            resp.status(),
            resp.status_text()
        ));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{url}: {e:?}"))?)
        .await
        .map_err(|e| format!("{url}: {e:?}"))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    if file.size() > MAX_UPLOAD_BYTES {
        return Err(format!(
            "{}: {:.0} MB is more than this page reads ({:.0} MB)",
            file.name(),
            file.size() / 1e6,
            MAX_UPLOAD_BYTES / 1e6
        ));
    }
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("{}: cannot read ({e:?})", file.name()))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Gives the browser a turn (rendering, input) between pieces of work.
pub async fn yield_now() {
    TimeoutFuture::new(0).await;
}

/// Which compute device the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU when an adapter is available, else the CPU.
    Auto,
    Cpu,
    WebGpu,
}

/// What `navigator.gpu` offers.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuProbe {
    pub adapter: bool,
    /// A software or otherwise limited adapter (e.g. SwiftShader).
    pub fallback: bool,
    pub description: String,
}

fn get(v: &wasm_bindgen::JsValue, key: &str) -> wasm_bindgen::JsValue {
    Reflect::get(v, &key.into()).unwrap_or(wasm_bindgen::JsValue::UNDEFINED)
}

/// Asks the browser for a WebGPU adapter, to tell the user what they have (burn asks again itself).
pub async fn probe_webgpu() -> GpuProbe {
    let none = |why: &str| GpuProbe {
        adapter: false,
        fallback: false,
        description: why.to_string(),
    };
    let Some(window) = web_sys::window() else {
        return none("no window");
    };
    let gpu = get(&window.navigator(), "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return none("this browser has no WebGPU (navigator.gpu is missing)");
    }
    let Ok(request) =
        Reflect::get(&gpu, &"requestAdapter".into()).and_then(|f| f.dyn_into::<js_sys::Function>())
    else {
        return none("navigator.gpu.requestAdapter is missing");
    };
    let Ok(promise) = request.call0(&gpu) else {
        return none("requestAdapter failed");
    };
    let adapter = match JsFuture::from(js_sys::Promise::from(promise)).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        _ => return none("no WebGPU adapter (the browser or its flags disable it)"),
    };
    let info = get(&adapter, "info");
    let text = |k: &str| get(&info, k).as_string().unwrap_or_default();
    let (vendor, arch, desc) = (text("vendor"), text("architecture"), text("description"));
    let fallback = get(&adapter, "isFallbackAdapter")
        .as_bool()
        .unwrap_or(false)
        || get(&info, "isFallbackAdapter").as_bool().unwrap_or(false)
        || arch.contains("swiftshader")
        || vendor.contains("llvmpipe")
        || desc.to_lowercase().contains("swiftshader");
    let mut parts: Vec<String> = [vendor, arch, desc]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    parts.dedup();
    GpuProbe {
        adapter: true,
        fallback,
        description: if parts.is_empty() {
            "adapter".into()
        } else {
            parts.join(" · ")
        },
    }
}

thread_local! {
    /// burn's wgpu runtime can be initialised once per page.
    static WGPU: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
    static CONTROLS: RefCell<HashMap<RunKind, Rc<RefCell<Control>>>> = RefCell::new(HashMap::new());
}

async fn wgpu_device() -> Result<Device, String> {
    if let Some(d) = WGPU.with(|w| w.borrow().clone()) {
        return d;
    }
    let d = lookalike_core::backend::wgpu_device_async().await;
    WGPU.with(|w| *w.borrow_mut() = Some(d.clone()));
    d
}

/// The device for a run, and whether it is WebGPU (`Auto` falls back to the CPU when WebGPU fails).
pub async fn device_for(
    choice: BackendChoice,
    gpu: Option<&GpuProbe>,
) -> Result<(Device, bool), String> {
    let want_gpu = match choice {
        BackendChoice::Cpu => false,
        BackendChoice::WebGpu => true,
        BackendChoice::Auto => gpu.is_some_and(|g| g.adapter),
    };
    if !want_gpu {
        return Ok((Device::flex(), false));
    }
    match wgpu_device().await {
        Ok(d) => Ok((d, true)),
        Err(e) if choice == BackendChoice::Auto => {
            web_sys::console::warn_1(&format!("WebGPU unavailable, using the CPU: {e}").into());
            Ok((Device::flex(), false))
        }
        Err(e) => Err(format!("WebGPU could not start: {e}")),
    }
}

/// Pause / step / stop requests for a running job, checked between steps.
#[derive(Debug, Default)]
pub struct Control {
    pub paused: bool,
    /// Steps still allowed while paused (the Step button).
    pub step_credit: usize,
    pub cancelled: bool,
    pub lr: f64,
}

pub fn control(kind: RunKind) -> Option<Rc<RefCell<Control>>> {
    CONTROLS.with(|c| c.borrow().get(&kind).cloned())
}

fn register(kind: RunKind, paused: bool, lr: f64) -> Rc<RefCell<Control>> {
    let c = Rc::new(RefCell::new(Control {
        paused,
        // A run started paused (by the Step button) takes its first step.
        step_credit: usize::from(paused),
        cancelled: false,
        lr,
    }));
    CONTROLS.with(|m| {
        if let Some(old) = m.borrow_mut().insert(kind, c.clone()) {
            old.borrow_mut().cancelled = true;
        }
    });
    c
}

pub fn cancel(kind: RunKind) {
    if let Some(c) = control(kind) {
        c.borrow_mut().cancelled = true;
    }
}

/// Where a run's starting weights come from.
#[derive(Clone)]
pub enum Start {
    Record(Rc<Vec<u8>>),
    /// Fresh random weights of the general record's architecture.
    Scratch,
}

/// One fine-tuning run.
#[derive(Clone)]
pub struct Job {
    pub kind: RunKind,
    pub generation: u64,
    pub start: Start,
    pub choice: BackendChoice,
    pub gpu: Option<GpuProbe>,
    pub assets: Rc<Assets>,
    pub plan: Rc<OnlinePlan>,
    pub ad: Vec<u32>,
    pub config: FineTuneConfig,
    /// The online recipe in `config` (the general model's choice; none under the paper's rule).
    pub recipe: OnlineRecipe,
    /// Whether that choice was two runs averaged, which the page does not run (its non-seeds are
    /// sampled from the pool): `recipe` is then the best single run they tried.
    pub chose_average: bool,
    pub seed: u64,
    /// Labelled stage-2 rows of a demo campaign: its real converters, for a true AUC at the end.
    pub truth: Option<Rc<Vec<Row>>>,
    /// Score every candidate at the end (the expansion itself).
    pub score_pool: bool,
    /// Start paused (the Step button drives it).
    pub paused: bool,
}

impl Job {
    /// A run on the page's current campaign, seeds and settings; `None` until those are ready.
    pub fn from_state(
        state: &AppState,
        kind: RunKind,
        generation: u64,
        start: Start,
        choice: BackendChoice,
        score_pool: bool,
        paused: bool,
    ) -> Option<Job> {
        let paper = state.teach_rule == TeachRule::Paper && kind != RunKind::Main;
        let training = &state.assets.as_ref()?.header.training;
        let recipe = if paper {
            OnlineRecipe::AsConfigured
        } else {
            training.online_recipe(false)
        };
        let chose_average = !paper && training.online_recipe(true) == OnlineRecipe::Averaged;
        Some(Job {
            kind,
            generation,
            start,
            choice,
            gpu: state.gpu.clone(),
            assets: state.assets.clone()?,
            plan: state.plan.clone()?,
            ad: state.ad.clone(),
            // The product's online rule, as `lookalike expand` runs it (the wide part fitted first,
            // a held-out fifth of the rows decides when to stop); the knobs set the most epochs and
            // the learning rate.
            config: if paper {
                // The teaching comparison can isolate the starting point with the paper's rule.
                FineTuneConfig::reference().with_lr(state.lr)
            } else {
                // The online recipe the general model's validation campaigns chose, non-seeds sampled
                // from the pool (as in `expand`: one run), and the knobs, which override the recipe as
                // flags do in the CLI.
                recipe
                    .apply(FineTuneConfig::new().sampled_negatives())
                    .with_epochs(state.epochs)
                    .with_lr(state.lr)
            },
            recipe,
            chose_average,
            seed: crate::state::SEED,
            truth: state.truth_rows(),
            score_pool,
            paused,
        })
    }

    /// Tells the reducer a run is coming, then runs it.
    pub fn queue(&self, dispatch: &UseReducerDispatcher<AppState>) {
        dispatch.dispatch(Action::Queue {
            kind: self.kind,
            generation: self.generation,
        });
    }
}

fn report(
    dispatch: &UseReducerDispatcher<AppState>,
    kind: RunKind,
    generation: u64,
    event: RunEvent,
) {
    dispatch.dispatch(Action::Run {
        kind,
        generation,
        event,
    });
}

/// What a job tells the page.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    Started {
        paused: bool,
        backend: String,
        total_steps: usize,
        /// What the online rule did before the first step and how it will stop, in words.
        rule: String,
    },
    Gates {
        after: bool,
        gates: lookalike_core::finetune::GateWeights,
    },
    Loss {
        step: usize,
        epoch: usize,
        loss: f32,
    },
    HeldOutAuc {
        step: usize,
        auc: f64,
    },
    Paused(bool),
    Trained {
        seconds: f64,
        steps_per_second: f64,
        /// Where the run stopped and which weights it kept, in words.
        stop: String,
        truth_auc: Option<f64>,
        /// Candidates scored next, when the run scores the pool.
        scoring_next: Option<usize>,
    },
    Scoring {
        done: usize,
        total: usize,
    },
    Scored {
        scores: Rc<Vec<f32>>,
        seconds: f64,
    },
    Failed(String),
}

/// Runs a job to the end (or until cancelled), reporting as it goes.
pub async fn run(job: Job, dispatch: UseReducerDispatcher<AppState>) {
    let (kind, generation) = (job.kind, job.generation);
    let control = register(kind, job.paused, job.config.lr);
    if let Err(e) = run_inner(&job, &control, &dispatch).await {
        report(&dispatch, kind, generation, RunEvent::Failed(e));
    }
}

/// Scores rows in small forward passes, giving the browser a turn between them.
async fn score(model: &MetaHeac, job: &Job, rows: &[Row]) -> Result<Vec<f32>, String> {
    let model = model.valid();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(SCORE_CHUNK) {
        yield_now().await;
        out.extend(score_async(&model, &job.assets.pool.users, &job.ad, chunk, SCORE_CHUNK).await?);
    }
    Ok(out)
}

async fn held_out_auc(model: &MetaHeac, job: &Job) -> Result<Option<f64>, String> {
    if job.plan.held.is_empty() {
        return Ok(None);
    }
    let s = score(model, job, &job.plan.probe).await?;
    Ok(auc(&job.plan.probe_labels, &s))
}

async fn run_inner(
    job: &Job,
    control: &Rc<RefCell<Control>>,
    dispatch: &UseReducerDispatcher<AppState>,
) -> Result<(), String> {
    let (kind, generation) = (job.kind, job.generation);
    let say = |e: RunEvent| report(dispatch, kind, generation, e);
    let cancelled = || control.borrow().cancelled;
    let (device, on_gpu) = device_for(job.choice, job.gpu.as_ref()).await?;
    let train_device = device.clone().autodiff();
    let assets = &job.assets;
    let (bytes, fresh) = match &job.start {
        Start::Record(bytes) => (bytes.as_slice(), None),
        Start::Scratch => (assets.record.as_slice(), Some(job.seed)),
    };
    let (header, model) = record::from_bytes_or_fresh(bytes, fresh, &train_device)
        .map_err(|e| format!("loading the model: {e}"))?;
    yield_now().await;
    let users = &assets.pool.users;
    // The prior of the past campaigns most like this one, where the record carries them (a fresh
    // model has none).
    let prior = header
        .prior_library(job.config.similar && fresh.is_none())
        .and_then(|l| Some((l, l.prior_for(users, &job.plan.rows)?)));
    let similar = prior.as_ref().map(|(l, p)| describe_similar(l, p));
    let model = match &prior {
        Some((_, p)) => lookalike_core::similar::fold_into(model, p),
        None => model,
    };
    let backend = if on_gpu {
        match &job.gpu {
            Some(g) if g.fallback => format!("WebGPU ({}; software fallback)", g.description),
            Some(g) => format!("WebGPU ({})", g.description),
            None => "WebGPU".into(),
        }
    } else {
        "CPU (wasm)".into()
    };
    let mut ft = FineTuner::new_async(
        model,
        job.config.clone(),
        users,
        &job.ad,
        &job.plan.rows,
        job.seed,
    )
    .await?;
    let total = ft.total_steps();
    say(RunEvent::Started {
        paused: control.borrow().paused,
        backend,
        total_steps: total,
        rule: describe_rule(&ft, &job.config, job.recipe, job.chose_average, similar),
    });
    if job.score_pool {
        let g = gate_weights_async(ft.model(), users, &job.ad, &job.plan.gate_rows).await?;
        say(RunEvent::Gates {
            after: false,
            gates: g,
        });
        yield_now().await;
    }
    if let Some(a) = held_out_auc(ft.model(), job).await? {
        say(RunEvent::HeldOutAuc { step: 0, auc: a });
    }
    // About eight held-out checks per run, and one at the end.
    let eval_every = total.div_ceil(8).max(1);
    let mut train_ms = 0.0;
    loop {
        yield_now().await;
        if cancelled() {
            return Ok(());
        }
        let (paused, credit) = {
            let c = control.borrow();
            (c.paused, c.step_credit)
        };
        if paused && credit == 0 {
            TimeoutFuture::new(50).await;
            continue;
        }
        if paused {
            control.borrow_mut().step_credit -= 1;
        }
        ft.set_lr(control.borrow().lr);
        let t0 = now_ms();
        // One step and, when due, the held-out check of the stopping rule.
        let Some(loss) = ft.step_async().await? else {
            break;
        };
        train_ms += now_ms() - t0;
        say(RunEvent::Loss {
            step: ft.step,
            epoch: ft.epoch,
            loss,
        });
        let check = ft.step.is_multiple_of(eval_every) || ft.is_done();
        if check {
            yield_now().await;
        }
        if check && let Some(a) = held_out_auc(ft.model(), job).await? {
            say(RunEvent::HeldOutAuc {
                step: ft.step,
                auc: a,
            });
        }
        if ft.is_done() {
            break;
        }
    }
    if cancelled() {
        return Ok(());
    }
    let steps = ft.step;
    let stop = describe_stop(&ft, total, job.config.refit);
    // The refit on every row, stepped here so the page gets a turn between its steps.
    let model = match ft.into_refit_async().await? {
        Ok(mut again) => {
            loop {
                yield_now().await;
                if cancelled() {
                    return Ok(());
                }
                if again.step_async().await?.is_none() {
                    break;
                }
            }
            again.into_model_async().await?
        }
        Err(model) => *model,
    };
    let truth_auc = match &job.truth {
        Some(rows) if !rows.is_empty() => {
            let s = score(&model, job, rows).await?;
            let labels: Vec<bool> = rows.iter().map(|r| r.label).collect();
            auc(&labels, &s)
        }
        _ => None,
    };
    say(RunEvent::Trained {
        seconds: train_ms / 1000.0,
        steps_per_second: steps as f64 / (train_ms / 1000.0).max(1e-9),
        stop,
        truth_auc,
        scoring_next: job.score_pool.then_some(job.plan.candidates.len()),
    });
    if !job.score_pool {
        return Ok(());
    }
    let g = gate_weights_async(&model, users, &job.ad, &job.plan.gate_rows).await?;
    say(RunEvent::Gates {
        after: true,
        gates: g,
    });
    yield_now().await;
    let t0 = now_ms();
    let candidates = &job.plan.candidates;
    // The fine-tuned model folded for this campaign, as `lookalike score` ranks a pool.
    let scorer = PoolScorer::new_async(&model, &job.ad).await?;
    let mut scores = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(REPORT_EVERY) {
        for pass in chunk.chunks(PASS) {
            if cancelled() {
                return Ok(());
            }
            yield_now().await;
            scores.extend(scorer.score_users_async(users, pass).await?);
        }
        say(RunEvent::Scoring {
            done: scores.len(),
            total: candidates.len(),
        });
    }
    say(RunEvent::Scored {
        scores: Rc::new(scores),
        seconds: (now_ms() - t0) / 1000.0,
    });
    Ok(())
}

/// The online rule's set-up, for the page: the wide part's fit and the hold-out.
fn describe_rule(
    ft: &FineTuner,
    config: &FineTuneConfig,
    recipe: OnlineRecipe,
    chose_average: bool,
    similar: Option<String>,
) -> String {
    let chosen = match recipe {
        r if chose_average => format!(
            "The general model's validation campaigns chose two fine-tuning runs averaged (Adam without the wide fit, the wide fit alone), which is for non-seeds that are users shown the ad; here the non-seeds are sampled from the pool, so the page runs the best single recipe they tried: {} (the knobs still set the epochs and the learning rate).",
            r.name()
        ),
        OnlineRecipe::AsConfigured => String::new(),
        r => format!(
            "The general model's validation campaigns chose this online recipe: {} (the knobs still set the epochs and the learning rate).",
            r.name()
        ),
    };
    let wide = match ft.wide_c() {
        Some(c) => format!(
            "The wide part was fitted first: a logistic regression on the users' tokens on top of the general model's score (L2, C = {c}, the strength the held-out rows preferred)."
        ),
        None if config.fit_wide && !ft.model().wide.is_empty() => {
            "The wide part was left as meta-trained: the held-out rows preferred the general model to every fitted strength.".to_string()
        }
        None if !ft.model().wide.is_empty() => {
            "The wide part was not fitted: it starts as meta-trained and Adam fine-tunes it with the rest.".to_string()
        }
        None => String::new(),
    };
    let held = ft.holdout().len();
    let stop = if held > 0 {
        format!(
            "{held} of the rows are held out; every {} steps and at each epoch's end their loss is checked, and the run stops after {} checks without a new best.{}",
            config.check_every,
            config.patience,
            if config.refit {
                " Then what the held-out rows chose (the wide part's strength, the number of steps) is refitted on all rows, held-out ones included: a fifth of a campaign's rows is a fifth of its seeds."
            } else {
                " The best weights are kept."
            }
        )
    } else {
        "Too few rows to hold any out: every epoch runs.".to_string()
    };
    let similar = similar.unwrap_or_default();
    format!("{chosen} {similar} {wide} {stop}")
        .trim()
        .to_string()
}

/// What the similar campaigns' prior is and which campaigns it took.
fn describe_similar(
    library: &lookalike_core::similar::Library,
    prior: &lookalike_core::similar::Prior,
) -> String {
    let aids = library.aids_of(prior);
    let shown = aids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    let more = aids.len().saturating_sub(5);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let which = if aids.len() == library.len() {
        format!("all of them, most alike first ({shown}{more}),")
    } else {
        format!(
            "the {} whose scores rank these seeds highest ({shown}{more})",
            aids.len()
        )
    };
    format!(
        "The general model's record carries past campaigns to start from: of the logistic regressions fitted on each of its {} training campaigns, {which} are averaged and added to the wide part before fine-tuning (a head start from campaigns like this one).",
        library.len(),
    )
}

/// Where the run stopped and which weights it kept.
fn describe_stop(ft: &FineTuner, total: usize, refit: bool) -> String {
    let ran = if ft.step < total {
        format!("stopped early at step {} of {total}", ft.step)
    } else {
        format!("ran all {total} steps")
    };
    let loss = |step| {
        ft.curve
            .iter()
            .find(|p| p.step == step)
            .and_then(|p| p.holdout_loss)
    };
    match ft.best_step() {
        Some(step) if refit && !ft.holdout().is_empty() => format!(
            "{ran}; the held-out rows chose step {step} (held-out loss {:.4}), so the model was refitted on all rows, held-out ones included, for {step} steps",
            loss(step).unwrap_or(f32::NAN)
        ),
        Some(step) => format!(
            "{ran}; kept the weights of step {step} (held-out loss {:.4})",
            loss(step).unwrap_or(f32::NAN)
        ),
        None => ran,
    }
}

/// Expert and critic gates of the general model for every campaign of the pool (the paper's Fig. 3d),
/// averaged over each campaign's seeds. CPU, yielding between campaigns.
pub async fn campaign_gates(
    assets: Rc<Assets>,
) -> Result<Vec<lookalike_core::finetune::GateWeights>, String> {
    let device = Device::flex();
    let (_, model) = record::from_bytes(&assets.record, &device).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for c in &assets.pool.campaigns {
        yield_now().await;
        let seeds: Vec<Row> = c
            .stage1
            .iter()
            .filter(|r| r.label)
            .take(256)
            .copied()
            .collect();
        let rows = if seeds.is_empty() {
            c.stage1.iter().take(256).copied().collect()
        } else {
            seeds
        };
        out.push(gate_weights_async(&model, &assets.pool.users, &c.ad, &rows).await?);
    }
    Ok(out)
}

/// One meta-training step on a demo training campaign, taken apart (teaching mode). CPU.
pub async fn walkthrough(
    assets: Rc<Assets>,
    task: usize,
    seed: u64,
) -> Result<lookalike_core::meta::Walkthrough, String> {
    yield_now().await;
    let device = Device::flex().autodiff();
    let (_, model) = record::from_bytes(&assets.record, &device).map_err(|e| e.to_string())?;
    let train: Vec<&lookalike_core::data::Campaign> = assets
        .training_campaigns()
        .into_iter()
        .map(|i| &assets.pool.campaigns[i])
        .collect();
    if train.is_empty() {
        return Err("this pool has no training campaigns".into());
    }
    let config = assets
        .header
        .training
        .meta
        .clone()
        .unwrap_or_else(lookalike_core::meta::MetaConfig::new)
        .with_support_size(256)
        .with_query_size(256);
    let mut trainer =
        lookalike_core::meta::MetaTrainer::new(model, config, &assets.pool.users, &train, seed);
    Ok(trainer.walkthrough(task.min(train.len() - 1)))
}
