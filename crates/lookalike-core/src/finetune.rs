//! Online stage: adapt the general model to one campaign (its seeds and non-seeds), then score candidates.

use crate::data::{Batch, Row, UserTable};
use crate::finite::NonFinite;
use crate::grads;
use crate::model::{Inputs, MetaHeac};
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
    /// Most epochs (the reference runs exactly 2, with no hold-out).
    #[config(default = 30)]
    pub epochs: usize,
    #[config(default = 512)]
    pub batch: usize,
    #[config(default = 1e-8)]
    pub adam_epsilon: f32,
    /// Fraction of the rows (stratified by label) held out of training to decide when to stop; 0 runs
    /// every epoch.
    #[config(default = 0.2)]
    pub holdout: f64,
    /// Stop after this many held-out checks without a lower held-out loss; the best weights are kept.
    #[config(default = 3)]
    pub patience: usize,
    /// A held-out check every this many steps, and at the end of every epoch.
    #[config(default = 25)]
    pub check_every: usize,
    /// Most steps in all (bounds hot campaigns with many rows).
    #[config(default = 300)]
    pub max_steps: usize,
    /// With a wide part, first fit it to convergence on the training rows: an L2 logistic regression
    /// on the one-hot user tokens with the general model's logit as a fixed offset (a campaign-specific
    /// correction that a few Adam steps could not reach), then fine-tune everything.
    #[config(default = true)]
    pub fit_wide: bool,
    /// Inverse L2 strengths (scikit-learn's C) tried for that fit; the held-out rows choose among them
    /// and "no fit" (the first without a hold-out).
    #[config(default = "vec![0.01, 0.1, 1.0]")]
    pub wide_c: Vec<f64>,
    /// With 2 or more: choose that strength (or no fit) by stratified k-fold cross-validation on the
    /// training rows, then fit on all of them, instead of letting the held-out rows choose. Off: on
    /// the validation campaigns of eight development worlds it moved mean AUC by −0.017 to +0.013,
    /// lower on five (README, "What the product's defaults are").
    #[config(default = 0)]
    pub wide_folds: usize,
    /// Fit the coefficient of the general model's logit in that regression too (it becomes the wide
    /// part's scale `s` of the critic mixture's logit, so the fitted model is the regression exactly);
    /// otherwise it stays 1, a plain offset.
    #[config(default = true)]
    pub wide_offset_scale: bool,
    /// Let that coefficient go below 0, turning the general model's ranking upside down for this
    /// campaign. Right where the non-seeds are the kind of negatives the general model was trained on
    /// (stage-1 rows: `eval`, `bench`, validation, which measure best with it); off for seeds against
    /// users sampled from the pool ([`Self::sampled_negatives`]: `expand`, the web page), where a
    /// negative coefficient reflects how the non-seeds were drawn, not the campaign.
    #[config(default = true)]
    pub wide_negative_offset: bool,
    /// Select, then refit on every row: once the held-out rows have chosen the wide fit's strength and
    /// the number of steps (the best check), start again from the general model on all rows, held-out
    /// ones included: the wide part fitted at that strength (or where k-fold cross-validation on all
    /// rows says, with [`Self::wide_folds`]), then that many steps. A fifth of a campaign's rows is a
    /// fifth of its few seeds; on the validation campaigns of eight development worlds the refit moved
    /// mean AUC from 0.757 to 0.766 (README, "What the product's defaults are").
    #[config(default = true)]
    pub refit: bool,
    /// What the held-out rows judge by, for the wide fit's strength and for when to stop.
    #[config(default = "HoldoutMetric::Loss")]
    pub holdout_metric: HoldoutMetric,
    /// With a wide part: fine-tune twice from the general model, Adam steps without the wide fit and
    /// the wide fit alone without Adam steps (each with the hold-out and refit above), and keep the
    /// average of the two networks' weights (WiSE-FT's weight-space ensemble; one network, so scoring
    /// costs what it does for one run). A recipe chosen on validation changes nothing while it is on
    /// ([`OnlineRecipe::apply`]). Off in the configuration. Forced on every campaign, it raised cold
    /// mean AUC on 8 of 11 worlds (InstEval +0.018, p 0.033) but lost on the independent world
    /// (−0.012, p 0.032) and the small tokens world (−0.091), where Adam without the wide fit is far
    /// behind; so it is one of the recipes a general model's validation campaigns choose among
    /// ([`OnlineRecipe::Averaged`]; README, "Online: two runs from the general model, averaged").
    #[config(default = false)]
    pub soup: bool,
    /// Fold the similar campaigns' prior into the wide part before fine-tuning, where the general
    /// model's record carries the library ([`crate::meta::MetaConfig::similar`];
    /// [`crate::record::RecordHeader::prior_library`]).
    #[config(default = true)]
    pub similar: bool,
}

/// What the held-out rows judge a fine-tuning candidate by (lower is better for both).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum HoldoutMetric {
    /// Mean log loss: calibrated probabilities.
    Loss,
    /// 1 − AUC: the ranking, which is what an audience is (the loss where the held-out rows lack a
    /// seed or a non-seed).
    Auc,
}

impl FineTuneConfig {
    /// For seeds against non-seeds sampled from the whole pool (an expansion): the general model's
    /// negatives were exposed non-converters, so random users can score above seeds, and a fitted
    /// negative coefficient would carry that artefact to the audience. Measured on a demo campaign in
    /// the browser (held-out seeds AUC of the general model 0.17): AUC on its real converters 0.14 with
    /// the coefficient free, 0.93 with it held at ≥ 0; on validation campaigns, README.
    ///
    /// One run, not the average of two ([`Self::soup`]), unless asked for afterwards: there the
    /// untouched general network can rank random users above the seeds, and averaging weights with it
    /// measured no better on validation campaigns in this setting (demo +0.001, survey +0.011,
    /// MovieLens −0.021; README).
    pub fn sampled_negatives(self) -> Self {
        self.with_wide_negative_offset(false).with_soup(false)
    }

    /// The official code's online stage: 2 epochs, no hold-out, no early stop.
    pub fn reference() -> Self {
        Self::new()
            .with_epochs(2)
            .with_holdout(0.0)
            .with_max_steps(usize::MAX)
            .with_fit_wide(false)
            .with_soup(false)
            .with_similar(false)
    }

    /// The two runs [`Self::soup`] averages: Adam steps without the wide fit, and the wide fit alone
    /// (each one run, with this configuration's hold-out and refit).
    pub fn soup_runs(&self) -> (FineTuneConfig, FineTuneConfig) {
        let single = self.clone().with_soup(false);
        (single.clone().with_fit_wide(false), single.with_epochs(0))
    }

    /// Whether a run of this configuration averages two runs (see [`Self::soup`]) for a model
    /// with (or without) a wide part.
    pub fn soups(&self, wide: bool) -> bool {
        self.soup && wide && self.fit_wide && self.epochs > 0 && self.max_steps > 0
    }
}

/// Alternatives to the online rule of a [`FineTuneConfig`], each changing one thing about the wide
/// part's fit or the Adam steps after it, for a general model's validation campaigns to choose among
/// ([`crate::meta::MetaConfig::online_select`]). Explicit settings (CLI flags) still override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnlineRecipe {
    /// The configuration as given.
    #[default]
    AsConfigured,
    /// The coefficient of the general model's logit in the wide fit held at ≥ 0: its ranking is never
    /// turned upside down for one campaign.
    NonNegativeOffset,
    /// That coefficient fixed at 1: the regression only corrects the general model.
    UnitOffset,
    /// No wide fit: Adam steps from the meta-learned wide part, as the paper's online stage.
    NoWideFit,
    /// The wide fit alone, no Adam steps.
    WideOnly,
    /// The last two fine-tuned separately from the general model and their weights averaged
    /// ([`FineTuneConfig::soup`]). Only where the non-seeds are stage-1 rows: with non-seeds sampled
    /// from the pool the best of the others applies ([`crate::schedule::OnlineChoice::applied`]).
    Averaged,
}

impl OnlineRecipe {
    /// Every recipe, the configuration as given first (it wins ties among the single runs; the
    /// average, where tried, is the default the others must beat: [`crate::schedule::OnlineChoice::pick`]).
    pub const ALL: [OnlineRecipe; 6] = [
        OnlineRecipe::AsConfigured,
        OnlineRecipe::NonNegativeOffset,
        OnlineRecipe::UnitOffset,
        OnlineRecipe::NoWideFit,
        OnlineRecipe::WideOnly,
        OnlineRecipe::Averaged,
    ];

    /// `config` with this recipe's change.
    pub fn apply(self, config: FineTuneConfig) -> FineTuneConfig {
        // Asked for, the average of the two runs replaces whatever validation chose.
        if config.soup {
            return config;
        }
        match self {
            OnlineRecipe::AsConfigured => config,
            OnlineRecipe::NonNegativeOffset => config.with_wide_negative_offset(false),
            OnlineRecipe::UnitOffset => config.with_wide_offset_scale(false),
            OnlineRecipe::NoWideFit => config.with_fit_wide(false),
            OnlineRecipe::WideOnly => config.with_epochs(0),
            OnlineRecipe::Averaged => config.with_soup(true),
        }
    }

    /// Whether it changes anything for a model with (or without) a wide part: all but the first are
    /// about the wide fit or the steps after it.
    pub fn applies(self, wide: bool) -> bool {
        wide || self == OnlineRecipe::AsConfigured
    }

    pub fn name(self) -> &'static str {
        match self {
            OnlineRecipe::AsConfigured => "as configured",
            OnlineRecipe::NonNegativeOffset => "general model's coefficient >= 0",
            OnlineRecipe::UnitOffset => "general model's coefficient 1",
            OnlineRecipe::NoWideFit => "no wide fit",
            OnlineRecipe::WideOnly => "wide fit only",
            OnlineRecipe::Averaged => "no wide fit and wide fit only, averaged",
        }
    }
}

/// One point of a fine-tuning curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    /// Training loss of this step's mini-batch (NaN at step 0).
    pub loss: f32,
    /// Loss on the held-out rows, where a check ran.
    pub holdout_loss: Option<f32>,
}

/// Step-wise fine-tuning (a fresh Adam per campaign, reshuffled each epoch), so a caller can show
/// progress or yield between steps. With a hold-out it stops once the held-out loss has not improved
/// for `patience` checks and returns the best weights seen (the general model itself included).
pub struct FineTuner<'a> {
    model: Option<MetaHeac>,
    optim: ModuleOptimizer,
    config: FineTuneConfig,
    users: &'a UserTable,
    ad: &'a [u32],
    rows: Vec<Row>,
    holdout: Vec<Row>,
    rng: StdRng,
    cursor: usize,
    /// Lowest held-out criterion so far, the weights that gave it and the step they were taken at.
    best: Option<(f32, MetaHeac, usize)>,
    /// The general model and the rows as given, kept to refit from (see [`FineTuneConfig::refit`]).
    refit_from: Option<(MetaHeac, Vec<Row>)>,
    /// The second run to average with this one (see [`FineTuneConfig::soup`]).
    soup: Option<Run<'a>>,
    seed: u64,
    /// The L2 strength the hold-out chose for the wide fit, if one was made.
    wide_c: Option<f64>,
    checks_since_best: usize,
    stopped: bool,
    epoch_ended: bool,
    pub curve: Vec<CurvePoint>,
    pub epoch: usize,
    pub step: usize,
}

/// Splits rows into (train, held out) with `fraction` of each label held out (none where a label has
/// fewer than 2 rows, so training always sees every class it has).
pub fn stratified_split(rows: &[Row], fraction: f64, rng: &mut StdRng) -> (Vec<Row>, Vec<Row>) {
    let (mut train, mut held) = (Vec::new(), Vec::new());
    if fraction <= 0.0 {
        return (rows.to_vec(), held);
    }
    for label in [true, false] {
        let mut part: Vec<Row> = rows.iter().copied().filter(|r| r.label == label).collect();
        part.shuffle(rng);
        let k = if part.len() < 2 {
            0
        } else {
            ((part.len() as f64 * fraction).round() as usize).clamp(1, part.len() - 1)
        };
        held.extend_from_slice(&part[..k]);
        train.extend_from_slice(&part[k..]);
    }
    (train, held)
}

impl<'a> FineTuner<'a> {
    /// `model` must live on an autodiff device. With a wide part, it is fitted first (see
    /// [`FineTuneConfig::fit_wide`]), reading values back synchronously.
    pub fn new(
        model: MetaHeac,
        config: FineTuneConfig,
        users: &'a UserTable,
        ad: &'a [u32],
        rows: &[Row],
        seed: u64,
    ) -> Self {
        let mut ft = Self::unfitted(model, config, users, ad, rows, seed);
        if ft.fits_wide() {
            let model = ft.model.take().expect("model present");
            let scores = predict(&model, users, ad, &ft.rows, 4096);
            let options = ft.wide_options(model, &scores);
            let losses: Vec<f32> = match options.len() {
                1 => Vec::new(),
                _ => options.iter().map(|(m, _)| ft.held_out(m).1).collect(),
            };
            ft.settle(options, &losses);
        }
        ft
    }

    /// [`Self::new`] reading values back asynchronously (WebGPU in a browser).
    pub async fn new_async(
        model: MetaHeac,
        config: FineTuneConfig,
        users: &'a UserTable,
        ad: &'a [u32],
        rows: &[Row],
        seed: u64,
    ) -> Result<Self, String> {
        let mut ft = Self::unfitted(model, config, users, ad, rows, seed);
        if ft.fits_wide() {
            let model = ft.model.take().expect("model present");
            let scores = predict_async(&model, users, ad, &ft.rows, 4096).await?;
            let options = ft.wide_options(model, &scores);
            let mut losses = Vec::new();
            if options.len() > 1 {
                for (m, _) in &options {
                    losses.push(ft.held_out_async(m).await?.1);
                }
            }
            ft.settle(options, &losses);
        }
        Ok(ft)
    }

    /// Split, shuffled, nothing fitted yet.
    fn unfitted(
        model: MetaHeac,
        config: FineTuneConfig,
        users: &'a UserTable,
        ad: &'a [u32],
        rows: &[Row],
        seed: u64,
    ) -> Self {
        // A soup: this run is the one without the wide fit; the wide fit alone runs at the end.
        let (config, soup) = if config.soups(!model.wide.is_empty()) && !rows.is_empty() {
            let (adam, wide) = config.soup_runs();
            let soup = Run {
                general: model.clone(),
                config: wide,
                users,
                ad,
                rows: rows.to_vec(),
                seed,
            };
            (adam, Some(soup))
        } else {
            (config, None)
        };
        let optim = AdamConfig::new().with_epsilon(config.adam_epsilon).init();
        let mut rng = StdRng::seed_from_u64(seed);
        let given = rows;
        let (mut rows, holdout) = stratified_split(given, config.holdout, &mut rng);
        rows.shuffle(&mut rng);
        let refit_from =
            (config.refit && !holdout.is_empty()).then(|| (model.clone(), given.to_vec()));
        FineTuner {
            model: Some(model),
            optim,
            config,
            users,
            ad,
            rows,
            holdout,
            rng,
            cursor: 0,
            best: None,
            refit_from,
            soup,
            seed,
            wide_c: None,
            checks_since_best: 0,
            stopped: false,
            epoch_ended: false,
            curve: Vec::new(),
            epoch: 0,
            step: 0,
        }
    }

    fn fits_wide(&self) -> bool {
        self.config.fit_wide && !self.model().wide.is_empty() && !self.rows.is_empty()
    }

    /// The candidates for the start of the run, the model with its wide part fitted at one of the
    /// strengths `config.wide_c` or not at all, with the strength: one when k-fold cross-validation on
    /// the training rows decides (see [`FineTuneConfig::wide_folds`]) or there is no hold-out (then the
    /// first strength); otherwise all of them, the unfitted model first, for the held-out rows' loss to
    /// decide. `scores` are the model's on the training rows.
    fn wide_options(&mut self, model: MetaHeac, scores: &[f32]) -> Vec<(MetaHeac, Option<f64>)> {
        let cs = &self.config.wide_c;
        let problem = WideFit::from_scores(
            &model,
            self.users,
            &self.rows,
            scores,
            OffsetRule::of(&self.config),
        );
        let decided = match problem.cross_validate(cs, self.config.wide_folds, &mut self.rng) {
            Some(choice) => Some(choice),
            None if self.holdout.is_empty() => Some(cs.first().copied()),
            None => None,
        };
        match decided {
            Some(Some(c)) => vec![(problem.apply(model, c), Some(c))],
            Some(None) => vec![(model, None)],
            None => {
                let mut options = vec![(model.clone(), None)];
                options.extend(
                    cs.iter()
                        .map(|&c| (problem.apply(model.clone(), c), Some(c))),
                );
                options
            }
        }
    }

    /// Starts from the option with the lowest held-out loss (the earliest on a tie, so "no fit" wins
    /// ties; the only one when `losses` is empty).
    fn settle(&mut self, options: Vec<(MetaHeac, Option<f64>)>, losses: &[f32]) {
        let best = (0..losses.len())
            .min_by(|&i, &j| losses[i].total_cmp(&losses[j]).then(i.cmp(&j)))
            .unwrap_or(0);
        let (model, c) = options.into_iter().nth(best).expect("a candidate");
        self.model = Some(model);
        self.wide_c = c;
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.rows.len().div_ceil(self.config.batch.max(1))
    }

    /// The most steps this run can take (fewer when it stops early).
    pub fn total_steps(&self) -> usize {
        (self.steps_per_epoch() * self.config.epochs).min(self.config.max_steps)
    }

    pub fn is_done(&self) -> bool {
        self.stopped
            || self.epoch >= self.config.epochs
            || self.step >= self.config.max_steps
            || self.rows.is_empty()
    }

    /// The L2 strength chosen for the wide part's fit (`None`: not fitted).
    pub fn wide_c(&self) -> Option<f64> {
        self.wide_c
    }

    /// The step of the best held-out check so far (0: the starting weights), if a check ran.
    pub fn best_step(&self) -> Option<usize> {
        self.best.as_ref().map(|b| b.2)
    }

    /// Rows held out for the stopping rule.
    pub fn holdout(&self) -> &[Row] {
        &self.holdout
    }

    pub fn model(&self) -> &MetaHeac {
        self.model.as_ref().expect("model present between steps")
    }

    /// One mini-batch step, then a held-out check when one is due; returns the step's loss, or `None`
    /// when the run is over. A non-finite loss is an error.
    pub fn step(&mut self) -> Result<Option<f32>, NonFinite> {
        if self.starting() {
            let h = self.check()?;
            self.push(0, f32::NAN, h);
        }
        let Some(loss) = self.step_lazy() else {
            return Ok(None);
        };
        let loss = self.finite(loss.into_scalar::<f32>())?;
        let h = if self.check_due() {
            self.check()?
        } else {
            None
        };
        self.push(self.step, loss, h);
        Ok(Some(loss))
    }

    /// [`Self::step`] reading values back asynchronously (WebGPU in a browser).
    pub async fn step_async(&mut self) -> Result<Option<f32>, String> {
        if self.starting() {
            let h = self.check_async().await?;
            self.push(0, f32::NAN, h);
        }
        let Some(loss) = self.step_lazy() else {
            return Ok(None);
        };
        let loss = loss
            .into_scalar_async::<f32>()
            .await
            .map_err(|e| format!("reading the loss back: {e:?}"))?;
        let loss = self.finite(loss).map_err(|e| e.to_string())?;
        let h = if self.check_due() {
            self.check_async().await?
        } else {
            None
        };
        self.push(self.step, loss, h);
        Ok(Some(loss))
    }

    /// Before the first step: the curve starts with the held-out loss of the starting weights.
    fn starting(&self) -> bool {
        self.step == 0 && self.curve.is_empty()
    }

    fn push(&mut self, step: usize, loss: f32, holdout_loss: Option<f32>) {
        self.curve.push(CurvePoint {
            step,
            loss,
            holdout_loss,
        });
    }

    fn finite(&self, loss: f32) -> Result<f32, NonFinite> {
        if loss.is_finite() {
            Ok(loss)
        } else {
            Err(NonFinite::new(
                format!("the fine-tuning loss at step {}", self.step),
                loss,
            ))
        }
    }

    /// A held-out check every `check_every` steps, at each epoch's end and at the last step.
    fn check_due(&self) -> bool {
        self.epoch_ended
            || self.step.is_multiple_of(self.config.check_every.max(1))
            || self.is_done()
    }

    /// Held-out loss of the current weights, judged (see [`Self::judge`]). `None` without a hold-out.
    fn check(&mut self) -> Result<Option<f32>, NonFinite> {
        if self.holdout.is_empty() {
            return Ok(None);
        }
        let model = self.model().clone();
        let (loss, criterion) = self.held_out(&model);
        self.judge(loss, criterion, model).map(Some)
    }

    /// [`Self::check`] reading back asynchronously.
    async fn check_async(&mut self) -> Result<Option<f32>, String> {
        if self.holdout.is_empty() {
            return Ok(None);
        }
        let model = self.model().clone();
        let (loss, criterion) = self.held_out_async(&model).await?;
        self.judge(loss, criterion, model)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The held-out rows' mean loss under `model`, and the value the rule minimises (see
    /// [`HoldoutMetric`]).
    fn held_out(&self, model: &MetaHeac) -> (f32, f32) {
        let loss = mean_loss(model, self.users, self.ad, &self.holdout, 4096);
        let criterion = match self.config.holdout_metric {
            HoldoutMetric::Loss => loss,
            HoldoutMetric::Auc => {
                let scores = predict(model, self.users, self.ad, &self.holdout, 4096);
                self.criterion(loss, &scores)
            }
        };
        (loss, criterion)
    }

    /// [`Self::held_out`] reading back asynchronously.
    async fn held_out_async(&self, model: &MetaHeac) -> Result<(f32, f32), String> {
        let loss = mean_loss_async(model, self.users, self.ad, &self.holdout, 4096).await?;
        let criterion = match self.config.holdout_metric {
            HoldoutMetric::Loss => loss,
            HoldoutMetric::Auc => {
                let scores = predict_async(model, self.users, self.ad, &self.holdout, 4096).await?;
                self.criterion(loss, &scores)
            }
        };
        Ok((loss, criterion))
    }

    /// 1 − AUC of the held-out `scores`, or `loss` where the hold-out has one class only.
    fn criterion(&self, loss: f32, scores: &[f32]) -> f32 {
        let labels: Vec<bool> = self.holdout.iter().map(|r| r.label).collect();
        crate::metrics::auc(&labels, scores).map_or(loss, |a| (1.0 - a) as f32)
    }

    /// Keeps `model` if its held-out `criterion` is the best so far, and stops the run after
    /// `patience` checks without improvement. Returns the held-out `loss`, which must be finite.
    fn judge(&mut self, loss: f32, criterion: f32, model: MetaHeac) -> Result<f32, NonFinite> {
        if !loss.is_finite() {
            return Err(NonFinite::new(
                format!("the held-out loss after fine-tuning step {}", self.step),
                loss,
            ));
        }
        match &self.best {
            // A relative margin, so noise on a flat curve does not count as progress.
            Some((best, _, _)) if criterion >= best * (1.0 - 1e-4) => {
                self.checks_since_best += 1;
                if self.checks_since_best >= self.config.patience.max(1) {
                    self.stopped = true;
                }
            }
            _ => {
                self.best = Some((criterion, model, self.step));
                self.checks_since_best = 0;
            }
        }
        Ok(loss)
    }

    /// One mini-batch step that reads nothing back: returns the (detached) loss tensor, so a browser
    /// on WebGPU can read it asynchronously, or only every few steps. Runs no held-out check.
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
        let loss = model.loss(&x);
        let value = loss.clone().detach();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.config.lr, model, grads));
        self.step += 1;
        self.cursor = end;
        self.epoch_ended = self.cursor >= self.rows.len();
        if self.epoch_ended {
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

    /// Runs the remaining steps; `on_step(step, total, loss)` after each. Returns the fine-tuned model
    /// (see [`Self::into_model`]).
    pub fn run(
        mut self,
        on_step: &mut dyn FnMut(usize, usize, f32),
    ) -> Result<MetaHeac, NonFinite> {
        let total = self.total_steps();
        while let Some(loss) = self.step()? {
            on_step(self.step, total, loss);
        }
        self.into_model()
    }

    /// The fine-tuned model: refitted on all rows as the held-out rows chose (see
    /// [`FineTuneConfig::refit`]); without a refit, the best held-out weights when a check ran, else the
    /// current ones.
    /// With [`FineTuneConfig::soup`], the average of that and the wide fit alone.
    pub fn into_model(mut self) -> Result<MetaHeac, NonFinite> {
        let soup = self.soup.take();
        let model = match self.refit() {
            Ok(r) => {
                let mut again = r.tuner();
                while again.step()?.is_some() {}
                again.chosen()
            }
            Err(model) => *model,
        };
        match soup {
            Some(soup) => soup.mix(model),
            None => Ok(model),
        }
    }

    /// [`Self::into_model`] reading values back asynchronously (WebGPU in a browser).
    pub async fn into_model_async(self) -> Result<MetaHeac, String> {
        match self.into_refit_async().await? {
            Ok(mut again) => {
                while again.step_async().await?.is_some() {}
                let soup = again.soup.take();
                let model = again.chosen();
                match soup {
                    Some(soup) => soup.mix_async(model).await,
                    None => Ok(model),
                }
            }
            Err(model) => Ok(*model),
        }
    }

    /// The refit as a run of its own (`Ok`: a fresh tuner on every row, to be stepped to the end and
    /// then turned into the model with [`Self::into_model_async`]), or (`Err`) the final model when
    /// there is none. For a caller that gives the browser a turn between the refit's steps.
    pub async fn into_refit_async(
        mut self,
    ) -> Result<Result<FineTuner<'a>, Box<MetaHeac>>, String> {
        let soup = self.soup.take();
        match self.refit() {
            Ok(r) => {
                let mut again = r.tuner_async().await?;
                // The refit, once stepped, ends the run: the second run goes with it.
                again.soup = soup;
                Ok(Ok(again))
            }
            Err(model) => match soup {
                Some(soup) => Ok(Err(Box::new(soup.mix_async(*model).await?))),
                None => Ok(Err(model)),
            },
        }
    }

    /// Whether this run ends by averaging with a second one (see [`FineTuneConfig::soup`]).
    pub fn soups(&self) -> bool {
        self.soup.is_some()
    }

    /// The refit to run, or (`Err`) the final model when there is none.
    fn refit(mut self) -> Result<Run<'a>, Box<MetaHeac>> {
        let steps = self.best.as_ref().map_or(self.step, |b| b.2);
        let wide_c = self.wide_c;
        let Some((general, rows)) = self.refit_from.take() else {
            return Err(Box::new(self.chosen()));
        };
        let mut config = self.config.clone();
        config.refit = false;
        config.holdout = 0.0;
        // Every epoch has at least one step, so `steps` epochs allow `steps` steps.
        config.max_steps = steps;
        config.epochs = steps;
        if config.wide_folds < 2 {
            match wide_c {
                Some(c) => config.wide_c = vec![c],
                None => config.fit_wide = false,
            }
        }
        Ok(Run {
            general,
            config,
            users: self.users,
            ad: self.ad,
            rows,
            seed: self.seed.wrapping_add(1),
        })
    }

    /// The best held-out weights when a check ran, else the current ones.
    fn chosen(self) -> MetaHeac {
        match self.best {
            Some((_, best, _)) => best,
            None => self.model.expect("model present between steps"),
        }
    }
}

impl<'a> Run<'a> {
    /// The run's tuner, its wide part fitted where the configuration says.
    fn tuner(self) -> FineTuner<'a> {
        FineTuner::new(
            self.general,
            self.config,
            self.users,
            self.ad,
            &self.rows,
            self.seed,
        )
    }

    /// [`Self::tuner`] reading values back asynchronously (WebGPU in a browser).
    async fn tuner_async(self) -> Result<FineTuner<'a>, String> {
        FineTuner::new_async(
            self.general,
            self.config,
            self.users,
            self.ad,
            &self.rows,
            self.seed,
        )
        .await
    }

    /// `model` (the first run's result) averaged with this run's (a soup's second run).
    fn mix(self, model: MetaHeac) -> Result<MetaHeac, NonFinite> {
        let mut wide = self.tuner();
        while wide.step()?.is_some() {}
        Ok(soup_of(model, &wide.into_model()?))
    }

    /// [`Self::mix`] reading values back asynchronously (WebGPU in a browser).
    async fn mix_async(self, model: MetaHeac) -> Result<MetaHeac, String> {
        let mut wide = self.tuner_async().await?;
        while wide.step_async().await?.is_some() {}
        // The second run holds no soup of its own; the box only breaks the type's recursion.
        let wide = Box::pin(wide.into_model_async()).await?;
        Ok(soup_of(model, &wide))
    }
}

/// The average of a soup's two fine-tuned networks, parameter by parameter (see
/// [`FineTuneConfig::soup`]).
fn soup_of(adam: MetaHeac, wide: &MetaHeac) -> MetaHeac {
    crate::grads::interpolate(adam, wide, 0.5)
}

/// A fresh run from the general model: the refit on all rows (see [`FineTuneConfig::refit`]), or a
/// soup's second run, the wide fit alone on the rows as given with the first run's seed (see
/// [`FineTuneConfig::soup`]).
struct Run<'a> {
    general: MetaHeac,
    config: FineTuneConfig,
    users: &'a UserTable,
    ad: &'a [u32],
    rows: Vec<Row>,
    seed: u64,
}

/// The online stage for one campaign: fine-tune `model` (an autodiff model) on `train` as `config`
/// says, then score `candidates` with the result. Returns the scores, checked finite, and the
/// fine-tuning curve.
pub fn tune_and_score(
    model: MetaHeac,
    config: &FineTuneConfig,
    users: &UserTable,
    ad: &[u32],
    train: &[Row],
    candidates: &[Row],
    seed: u64,
) -> Result<(Vec<f32>, Vec<CurvePoint>), NonFinite> {
    let mut ft = FineTuner::new(model, config.clone(), users, ad, train, seed);
    while ft.step()?.is_some() {}
    let curve = std::mem::take(&mut ft.curve);
    let scores = crate::expansion::score(
        &ft.into_model()?,
        users,
        ad,
        candidates,
        crate::expansion::SCORE_BATCH,
    )?;
    Ok((scores, curve))
}

/// The two runs [`FineTuneConfig::soup`] averages and their average, each scored on `candidates`:
/// what [`tune_and_score`] gives with [`OnlineRecipe::NoWideFit`], [`OnlineRecipe::WideOnly`] and
/// [`OnlineRecipe::Averaged`] applied to `config` (where the average is of two runs:
/// [`FineTuneConfig::soups`]), from two fine-tunes instead of four.
pub fn tune_and_score_both(
    model: MetaHeac,
    config: &FineTuneConfig,
    users: &UserTable,
    ad: &[u32],
    train: &[Row],
    candidates: &[Row],
    seed: u64,
) -> Result<[Vec<f32>; 3], NonFinite> {
    let (adam, wide) = config.soup_runs();
    let tune = |config: FineTuneConfig| {
        FineTuner::new(model.clone(), config, users, ad, train, seed).run(&mut |_, _, _| {})
    };
    let adam = tune(adam)?;
    let wide = tune(wide)?;
    let averaged = soup_of(adam.clone(), &wide);
    let score = |m: &MetaHeac| {
        crate::expansion::score(m, users, ad, candidates, crate::expansion::SCORE_BATCH)
    };
    Ok([score(&adam)?, score(&wide)?, score(&averaged)?])
}

/// A point of a traced fine-tune (see [`trace`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TracePoint {
    pub step: usize,
    /// Training loss of this step's mini-batch (NaN at step 0).
    pub loss: f32,
    pub holdout_loss: Option<f32>,
    /// AUC of the candidates at step 0 and wherever a held-out check ran (or, without a hold-out,
    /// every `check_every` steps).
    pub auc: Option<f64>,
}

/// [`tune_and_score`] step by step, scoring the candidates along the way: the fine-tuning loss and
/// AUC curves of the paper's Fig. 3. The candidates' labels are read, so this is for charts only,
/// never to choose anything; the run itself (and where it stops) is the same as `tune_and_score`'s.
pub fn trace(
    model: MetaHeac,
    config: &FineTuneConfig,
    users: &UserTable,
    ad: &[u32],
    train: &[Row],
    candidates: &[Row],
    seed: u64,
) -> Result<Vec<TracePoint>, NonFinite> {
    let labels: Vec<bool> = candidates.iter().map(|r| r.label).collect();
    let auc_of = |m: &MetaHeac| -> Result<Option<f64>, NonFinite> {
        let scores =
            crate::expansion::score(m, users, ad, candidates, crate::expansion::SCORE_BATCH)?;
        Ok(crate::metrics::auc(&labels, &scores))
    };
    let mut ft = FineTuner::new(model, config.clone(), users, ad, train, seed);
    let mut aucs = vec![auc_of(ft.model())?];
    let every = config.check_every.max(1);
    while ft.step()?.is_some() {
        let last = ft.curve.last().expect("a step adds a point");
        aucs.push(
            if last.holdout_loss.is_some() || last.step.is_multiple_of(every) {
                auc_of(ft.model())?
            } else {
                None
            },
        );
    }
    Ok(ft
        .curve
        .iter()
        .zip(aucs)
        .map(|(p, auc)| TracePoint {
            step: p.step,
            loss: p.loss,
            holdout_loss: p.holdout_loss,
            auc,
        })
        .collect())
}

/// One campaign's wide-part regression, whatever the strength: the rows' one-hot user columns, labels
/// and the model's logits (the offset), computed once.
struct WideFit {
    dim: usize,
    x: Vec<Vec<u32>>,
    y: Vec<bool>,
    offset: Vec<f64>,
    rule: OffsetRule,
}

/// What the wide regression may do with the general model's logit (its offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffsetRule {
    /// Coefficient 1.
    Fixed,
    /// Coefficient fitted, any sign.
    Free,
    /// Coefficient fitted, at least 0.
    NonNegative,
}

impl OffsetRule {
    fn of(config: &FineTuneConfig) -> Self {
        match (config.wide_offset_scale, config.wide_negative_offset) {
            (false, _) => OffsetRule::Fixed,
            (true, true) => OffsetRule::Free,
            (true, false) => OffsetRule::NonNegative,
        }
    }
}

impl WideFit {
    /// The problem for rows the model gave `scores` (probabilities).
    fn from_scores(
        model: &MetaHeac,
        users: &UserTable,
        rows: &[Row],
        scores: &[f32],
        rule: OffsetRule,
    ) -> Self {
        let onehot = crate::lr::OneHot::of_wide(model);
        let offset = scores
            .iter()
            .map(|&p| {
                let p = (p as f64).clamp(1e-6, 1.0 - 1e-6);
                (p / (1.0 - p)).ln()
            })
            .collect();
        WideFit {
            dim: onehot.dim,
            x: onehot.rows(users, rows),
            y: rows.iter().map(|r| r.label).collect(),
            offset,
            rule,
        }
    }

    /// The fit at strength `c` on the rows `keep` says (an L2 logistic regression, see [`Self::apply`]).
    fn fit(&self, c: f64) -> crate::lr::Lr {
        self.fit_on(c, &self.x, &self.y, &self.offset)
    }

    /// The fit at strength `c` on some of the rows: their columns, labels and offsets.
    fn fit_on(&self, c: f64, x: &[Vec<u32>], y: &[bool], offset: &[f64]) -> crate::lr::Lr {
        use crate::lr::{Lr, LrConfig};
        let cfg = LrConfig {
            c,
            fit_offset_scale: self.rule != OffsetRule::Fixed,
            ..LrConfig::default()
        };
        let fit = Lr::fit_with_offset(x, y, Some(offset), self.dim, &cfg);
        if fit.offset_scale >= 0.0 || self.rule != OffsetRule::NonNegative {
            return fit;
        }
        // The objective is convex, so when its minimum has a < 0 the minimum over a ≥ 0 lies at a = 0:
        // the offset drops out and the tokens alone are fitted (the general model ignored, not
        // inverted).
        let mut plain = Lr::fit(x, y, self.dim, &cfg);
        plain.offset_scale = 0.0;
        plain
    }

    /// Stratified `folds`-fold cross-validation of "no fit" (the model's own logit) against a fit at
    /// each strength in `cs`, by summed log loss on the left-out rows: `Some(choice)` (`None` inside
    /// meaning no fit), or `None` when there are fewer than 2 folds to make (too few seeds or
    /// non-seeds, or `folds` < 2).
    fn cross_validate(&self, cs: &[f64], folds: usize, rng: &mut StdRng) -> Option<Option<f64>> {
        use crate::lr::log_loss;
        let pos = self.y.iter().filter(|&&y| y).count();
        let k = folds.min(pos).min(self.y.len() - pos);
        if k < 2 || cs.is_empty() {
            return None;
        }
        // Each label's rows dealt round-robin over the folds in a random order.
        let mut fold = vec![0usize; self.y.len()];
        for label in [true, false] {
            let mut idx: Vec<usize> = (0..self.y.len()).filter(|&i| self.y[i] == label).collect();
            idx.shuffle(rng);
            for (j, &i) in idx.iter().enumerate() {
                fold[i] = j % k;
            }
        }
        let none: f64 = (0..self.y.len())
            .map(|i| log_loss(self.offset[i], self.y[i]))
            .sum();
        // Summed held-out loss per strength; each fold's training rows gathered once.
        let mut totals = vec![0.0; cs.len()];
        for f in 0..k {
            let keep: Vec<usize> = (0..self.y.len()).filter(|&i| fold[i] != f).collect();
            let x: Vec<Vec<u32>> = keep.iter().map(|&i| self.x[i].clone()).collect();
            let y: Vec<bool> = keep.iter().map(|&i| self.y[i]).collect();
            let o: Vec<f64> = keep.iter().map(|&i| self.offset[i]).collect();
            for (total, &c) in totals.iter_mut().zip(cs) {
                let lr = self.fit_on(c, &x, &y, &o);
                *total += (0..self.y.len())
                    .filter(|&i| fold[i] == f)
                    .map(|i| {
                        log_loss(
                            lr.offset_scale * self.offset[i] + lr.logit(&self.x[i]),
                            self.y[i],
                        )
                    })
                    .sum::<f64>();
            }
        }
        let mut best = (none, None);
        for (&total, &c) in totals.iter().zip(cs) {
            if total < best.0 {
                best = (total, Some(c));
            }
        }
        Some(best.1)
    }

    /// `model` (the one the offsets came from) with the fit at strength `c` written into it: the
    /// critics and the general wide weights scaled by the offset's coefficient a, the fitted weights
    /// added, and the intercept put into the first single-valued field's weights, which every user has
    /// exactly one of.
    fn apply(&self, model: MetaHeac, c: f64) -> MetaHeac {
        let fit = self.fit(c);
        // The model's logit is s · logit ŷ + w(x), so a times it is the model with a·s and a·w.
        scale_and_add_wide(model, fit.offset_scale as f32, &fit.weights, fit.bias)
    }
}

/// `model` with its logit s · logit ŷ + w(x) multiplied by `scale` (s and w both), then a linear term
/// over the user's one-hot columns added to w(x): `weights` (one per column, the wide tables' rows in
/// field order) and `bias`, put into the first single-valued field's weights, which every user has
/// exactly one of. Written with tensor operations, not host edits, so that nothing is read back.
pub(crate) fn scale_and_add_wide(
    mut model: MetaHeac,
    scale: f32,
    weights: &[f64],
    bias: f64,
) -> MetaHeac {
    model.wide_scale = model
        .wide_scale
        .map(|s| grads::remap(s, |t| t.mul_scalar(scale)));
    let has_single = !model.user_single.is_empty();
    let mut start = 0;
    model.wide = std::mem::take(&mut model.wide)
        .into_iter()
        .enumerate()
        .map(|(f, e)| {
            let n = e.weight.val().dims()[0];
            let bias = if f == 0 && has_single { bias } else { 0.0 };
            let add: Vec<f32> = weights[start..start + n]
                .iter()
                .map(|w| (w + bias) as f32)
                .collect();
            start += n;
            burn::nn::Embedding {
                weight: grads::remap(e.weight, |t| {
                    let add = Tensor::<2>::from_data(TensorData::new(add, [n, 1]), &t.device());
                    t.mul_scalar(scale) + add
                }),
            }
        })
        .collect();
    model
}

/// Mean BCE of a model over rows (inference only, read back synchronously).
pub fn mean_loss(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> f32 {
    let model = model.valid();
    let mut sum = 0.0f64;
    for chunk in rows.chunks(batch.max(1)) {
        let b = Batch::gather(users, &model.multi_lens, ad, chunk);
        let l = model
            .loss(&Inputs::new(&b, &model.device()))
            .into_scalar::<f32>();
        sum += l as f64 * chunk.len() as f64;
    }
    (sum / rows.len().max(1) as f64) as f32
}

/// [`mean_loss`] with asynchronous read-back (required on WebGPU in a browser).
pub async fn mean_loss_async(
    model: &MetaHeac,
    users: &UserTable,
    ad: &[u32],
    rows: &[Row],
    batch: usize,
) -> Result<f32, String> {
    let model = model.valid();
    let mut sum = 0.0f64;
    for chunk in rows.chunks(batch.max(1)) {
        let b = Batch::gather(users, &model.multi_lens, ad, chunk);
        let l = model
            .loss(&Inputs::new(&b, &model.device()))
            .into_scalar_async::<f32>()
            .await
            .map_err(|e| format!("reading a loss back: {e:?}"))?;
        sum += l as f64 * chunk.len() as f64;
    }
    Ok((sum / rows.len().max(1) as f64) as f32)
}

/// The scores of one chunk of rows, not yet read back.
fn score_tensor(model: &MetaHeac, users: &UserTable, ad: &[u32], rows: &[Row]) -> Tensor<1> {
    let b = Batch::gather(users, &model.multi_lens, ad, rows);
    model.forward(&Inputs::new(&b, &model.device())).prob
}

pub(crate) fn f32s(data: TensorData) -> Vec<f32> {
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
    let passes: Vec<&[Row]> = rows.chunks(batch.max(1)).collect();
    // The passes side by side, one per core (one at a time, only the products would use a second
    // core). Each pass is computed as it would be alone, so the scores do not depend on the threads.
    let threads = crate::meta::threads(0);
    crate::meta::per_task(passes.len(), threads, |i| {
        f32s(score_tensor(&model, users, ad, passes[i]).into_data())
    })
    .concat()
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
