//! The offline schedule: meta-train until the general model stops getting better on held-out training
//! campaigns, measured as it will be used: fine-tune on part of each validation campaign's rows, then
//! AUC on the rest. The reference's fixed "one epoch" is a schedule only on data the size of Tencent's.

use crate::checkpoint::{Checkpoint, CheckpointHeader};
use crate::data::{Campaign, Row, UserTable};
use crate::finetune::{FineTuneConfig, OnlineRecipe, stratified_split, tune_and_score};
use crate::finite::NonFinite;
use crate::lr::{LrConfig, OneHot};
use crate::meta::{MetaConfig, MetaTrainer, SimilarRule, StepStats};
use crate::metrics::auc;
use crate::model::MetaHeac;
use crate::similar::Library;
use crate::unknown::fill_unseen;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// Splits training campaigns into (meta-training, validation). Only campaigns with at least 4 seeds
/// and 4 non-seeds can validate; none are held out when fewer than 3 campaigns would remain to train on.
pub fn split_campaigns<'a>(
    campaigns: &[&'a Campaign],
    fraction: f64,
    seed: u64,
) -> (Vec<&'a Campaign>, Vec<&'a Campaign>) {
    let usable = |c: &Campaign| {
        let pos = c.seeds();
        pos >= 4 && c.stage1.len() - pos >= 4
    };
    let candidates: Vec<usize> = (0..campaigns.len())
        .filter(|&i| usable(campaigns[i]))
        .collect();
    let want = (campaigns.len() as f64 * fraction).round() as usize;
    let k = want
        .max(usize::from(fraction > 0.0))
        .min(candidates.len())
        .min(campaigns.len().saturating_sub(3));
    let mut rng = StdRng::seed_from_u64(seed);
    let picked: Vec<usize> = candidates.sample(&mut rng, k).copied().collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, c) in campaigns.iter().enumerate() {
        if picked.contains(&i) {
            val.push(*c);
        } else {
            train.push(*c);
        }
    }
    (train, val)
}

#[derive(Clone)]
struct ValidationSet<'a> {
    campaign: &'a Campaign,
    tune: Vec<Row>,
    eval: Vec<Row>,
}

/// Held-out training campaigns, each split into rows to fine-tune on and rows to score.
pub struct Validation<'a> {
    users: &'a UserTable,
    sets: Vec<ValidationSet<'a>>,
    finetune: FineTuneConfig,
    seed: u64,
    /// Also fine-tune on the scored half and score the other ([`MetaConfig::val_crossfit`]).
    crossfit: bool,
    /// The fine-tunes run on this many threads ([`MetaConfig::threads`], resolved); each has its own
    /// seed, so the count does not change the result.
    threads: usize,
    /// At most this many stage-1 rows per campaign ([`MetaConfig::val_max_rows`]).
    max_rows: usize,
}

impl<'a> Validation<'a> {
    /// At most `meta.val_max_rows` stage-1 rows per campaign (stratified), half to fine-tune and half
    /// to score (and, with `meta.val_crossfit`, the other way round too).
    pub fn new(
        users: &'a UserTable,
        campaigns: &[&'a Campaign],
        finetune: FineTuneConfig,
        meta: &MetaConfig,
        seed: u64,
    ) -> Self {
        Validation {
            users,
            sets: Self::split(campaigns, meta.val_max_rows, seed),
            finetune,
            seed,
            crossfit: meta.val_crossfit,
            threads: crate::meta::threads(meta.threads),
            max_rows: meta.val_max_rows,
        }
    }

    /// The same campaigns split again from `seed`: other rows to fine-tune on and to score, other
    /// fine-tune seeds. A comparison made after choices were made on this validation (the kept
    /// iteration, the recipe, the experts: each the best of several on these very rows) is then not
    /// flattered on one side by them.
    pub fn resplit(&self, seed: u64) -> Validation<'a> {
        let campaigns: Vec<&'a Campaign> = self.sets.iter().map(|v| v.campaign).collect();
        Validation {
            sets: Self::split(&campaigns, self.max_rows, seed),
            finetune: self.finetune.clone(),
            seed,
            ..*self
        }
    }

    /// The split [`choose_similar`] compares on ([`Self::resplit`] from a seed of its own).
    pub fn similar_split(&self) -> Validation<'a> {
        self.resplit(self.seed ^ 0x51_0000_0000)
    }

    /// The split [`choose_online_with_prior`] chooses on (another seed of its own: the recipe chosen
    /// there would flatter the side of the similar campaigns' comparison that uses it).
    pub fn recipe_split(&self) -> Validation<'a> {
        self.resplit(self.seed ^ 0x52_0000_0000)
    }

    fn split(campaigns: &[&'a Campaign], max_rows: usize, seed: u64) -> Vec<ValidationSet<'a>> {
        let mut rng = StdRng::seed_from_u64(seed);
        campaigns
            .iter()
            .map(|c| {
                let rows = if c.stage1.len() > max_rows {
                    let keep = max_rows as f64 / c.stage1.len() as f64;
                    stratified_split(&c.stage1, 1.0 - keep, &mut rng).0
                } else {
                    c.stage1.clone()
                };
                let (tune, eval) = stratified_split(&rows, 0.5, &mut rng);
                ValidationSet {
                    campaign: c,
                    tune,
                    eval,
                }
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// The held-out campaigns' ids.
    pub fn aids(&self) -> Vec<&str> {
        self.sets.iter().map(|v| v.campaign.aid.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Mean AUC over the validation campaigns after fine-tuning `general` (an autodiff model) on each.
    pub fn mean_auc(&self, general: &MetaHeac) -> Result<f64, NonFinite> {
        Ok(mean_of(&self.aucs(general)?))
    }

    /// Each validation campaign's AUC after fine-tuning `general` on it (`None` where no scored half
    /// has both a positive and a negative).
    pub fn aucs(&self, general: &MetaHeac) -> Result<Vec<Option<f64>>, NonFinite> {
        self.aucs_as(general, &self.finetune)
    }

    /// [`Self::aucs`], fine-tuning as `finetune` says instead.
    pub fn aucs_as(
        &self,
        general: &MetaHeac,
        finetune: &FineTuneConfig,
    ) -> Result<Vec<Option<f64>>, NonFinite> {
        self.aucs_from(general, finetune, None)
    }

    /// [`Self::aucs_as`] with the prior of the campaigns of `library` most like each one (from the
    /// rows it is fine-tuned on; never the campaign itself, where the library holds it) folded into
    /// `general`'s wide part first ([`Library::fold_leaving_out`]); the same seeds, so paired with
    /// [`Self::aucs_as`] only the prior differs.
    pub fn aucs_with_library(
        &self,
        general: &MetaHeac,
        finetune: &FineTuneConfig,
        library: &Library,
    ) -> Result<Vec<Option<f64>>, NonFinite> {
        self.aucs_from(general, finetune, Some(library))
    }

    fn aucs_from(
        &self,
        general: &MetaHeac,
        finetune: &FineTuneConfig,
        library: Option<&Library>,
    ) -> Result<Vec<Option<f64>>, NonFinite> {
        self.per_campaign(|i, fold, tune, eval| {
            let (scores, _) = tune_and_score(
                self.start(general, i, tune, library),
                finetune,
                self.users,
                &self.sets[i].campaign.ad,
                tune,
                eval,
                self.fine_tune_seed(i, fold),
            )?;
            Ok(scores)
        })
    }

    /// What campaign `i`'s fine-tune on `tune` starts from: `general` with fresh leaves (the
    /// fine-tunes on other threads share no graph with this one), and the prior of `library` from
    /// those rows folded in where one is given, the campaign itself left out.
    fn start(
        &self,
        general: &MetaHeac,
        i: usize,
        tune: &[Row],
        library: Option<&Library>,
    ) -> MetaHeac {
        let model = crate::grads::releaf(general.clone());
        match library {
            Some(l) => l.fold_leaving_out(model, self.users, tune, &self.sets[i].campaign.aid),
            None => model,
        }
    }

    /// The seed of campaign `i`'s fine-tune on half `fold`.
    fn fine_tune_seed(&self, i: usize, fold: u64) -> u64 {
        self.seed ^ i as u64 ^ (fold << 32)
    }

    /// Each validation campaign's AUC for the LR baseline fitted on the same rows: the floor the general
    /// model has to clear.
    pub fn lr_aucs(
        &self,
        onehot: &OneHot,
        config: &LrConfig,
    ) -> Result<Vec<Option<f64>>, NonFinite> {
        self.per_campaign(|_, _, tune, eval| {
            let (_, scores) = crate::lr::fit_and_score(onehot, self.users, tune, eval, config);
            crate::finite::check(&scores, "an LR score")?;
            Ok(scores)
        })
    }

    /// [`Self::aucs_as`] for [`OnlineRecipe::NoWideFit`], [`OnlineRecipe::WideOnly`] and
    /// [`OnlineRecipe::Averaged`] applied to `finetune`, in that order, from two fine-tunes per
    /// campaign instead of four ([`crate::finetune::tune_and_score_both`]).
    pub fn aucs_both_and_averaged(
        &self,
        general: &MetaHeac,
        finetune: &FineTuneConfig,
    ) -> Result<[Vec<Option<f64>>; 3], NonFinite> {
        self.both_and_averaged_from(general, finetune, None)
    }

    /// [`Self::aucs_both_and_averaged`], with the prior of `library` folded in first where one is
    /// given (as [`Self::aucs_with_library`]).
    fn both_and_averaged_from(
        &self,
        general: &MetaHeac,
        finetune: &FineTuneConfig,
        library: Option<&Library>,
    ) -> Result<[Vec<Option<f64>>; 3], NonFinite> {
        let sets = self.per_campaign_sets(3, |i, fold, tune, eval| {
            let scores = crate::finetune::tune_and_score_both(
                self.start(general, i, tune, library),
                finetune,
                self.users,
                &self.sets[i].campaign.ad,
                tune,
                eval,
                self.fine_tune_seed(i, fold),
            )?;
            Ok(scores.to_vec())
        })?;
        Ok(sets.try_into().expect("three sets"))
    }

    /// Per campaign: `score(campaign, fold, tune rows, scored rows)` on its halves (both ways round
    /// with cross-fitting), and the mean AUC of the folds that have both labels.
    fn per_campaign(
        &self,
        score: impl Fn(usize, u64, &[Row], &[Row]) -> Result<Vec<f32>, NonFinite> + Sync,
    ) -> Result<Vec<Option<f64>>, NonFinite> {
        let mut sets = self.per_campaign_sets(1, |i, fold, tune, eval| {
            Ok(vec![score(i, fold, tune, eval)?])
        })?;
        Ok(sets.swap_remove(0))
    }

    /// [`Self::per_campaign`] for `k` scorings of the same halves at once (`score` returns `k` score
    /// vectors): `k` lists of per-campaign AUCs.
    fn per_campaign_sets(
        &self,
        k: usize,
        score: impl Fn(usize, u64, &[Row], &[Row]) -> Result<Vec<Vec<f32>>, NonFinite> + Sync,
    ) -> Result<Vec<Vec<Option<f64>>>, NonFinite> {
        let folds = if self.crossfit { 2 } else { 1 };
        let jobs: Vec<(usize, u64)> = (0..self.sets.len())
            .flat_map(|i| (0..folds).map(move |f| (i, f)))
            .collect();
        let aucs = crate::meta::per_task(jobs.len(), self.threads, |j| {
            let (i, fold) = jobs[j];
            let v = &self.sets[i];
            let (tune, eval) = match fold {
                0 => (&v.tune, &v.eval),
                _ => (&v.eval, &v.tune),
            };
            let sets = score(i, fold, tune, eval)?;
            debug_assert_eq!(sets.len(), k);
            let labels: Vec<bool> = eval.iter().map(|r| r.label).collect();
            Ok(sets.iter().map(|s| auc(&labels, s)).collect::<Vec<_>>())
        });
        let mut out = vec![vec![Vec::new(); self.sets.len()]; k];
        for ((i, _), a) in jobs.into_iter().zip(aucs) {
            for (set, a) in out.iter_mut().zip(a?) {
                set[i].extend(a);
            }
        }
        Ok(out
            .into_iter()
            .map(|set| {
                set.into_iter()
                    .map(|a| (!a.is_empty()).then(|| crate::stats::mean_std(&a).0))
                    .collect()
            })
            .collect())
    }
}

/// The online recipe a general model's validation campaigns chose ([`choose_online`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OnlineChoice {
    pub recipe: OnlineRecipe,
    /// Each recipe tried, with its validation mean AUC.
    pub tried: Vec<(OnlineRecipe, f64)>,
    /// Each recipe's per-campaign validation AUCs, in `tried`'s order (none in records written
    /// before they were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aucs: Vec<Vec<Option<f64>>>,
}

impl OnlineChoice {
    /// The index in `tried` that [`choose_online`]'s rule picks from these validation AUCs (`aucs`
    /// per recipe, in `tried`'s order): the default recipe (the average of two runs where it was
    /// tried, else the configuration as given) unless another one leads it by more than `margin`
    /// standard errors of the paired difference over the validation campaigns, on two at least;
    /// then the one furthest ahead (the earliest on a tie). With `margin` 0 that is the highest mean.
    pub fn pick(tried: &[(OnlineRecipe, f64)], aucs: &[Vec<Option<f64>>], margin: f64) -> usize {
        let default = tried
            .iter()
            .position(|t| t.0 == OnlineRecipe::Averaged)
            .unwrap_or(0);
        aucs.iter()
            .enumerate()
            .filter(|&(i, _)| i != default)
            // The experts' paired comparison, recipe against recipe (`experts` unused).
            .map(|(i, a)| (i, Ahead::of(0, a, &aucs[default])))
            .filter(|(_, v)| v.clears(margin))
            .fold(None::<(usize, f64)>, |best, (i, v)| match best {
                Some((_, m)) if m >= v.mean_diff => best,
                _ => Some((i, v.mean_diff)),
            })
            .map_or(default, |(i, _)| i)
    }

    /// The recipe [`Self::pick`] gives with `margin` (the chosen one where the per-campaign AUCs
    /// were not kept).
    pub fn with_margin(&self, margin: f64) -> OnlineRecipe {
        if self.aucs.len() != self.tried.len() {
            return self.recipe;
        }
        self.tried[Self::pick(&self.tried, &self.aucs, margin)].0
    }

    /// The recipe to apply: the chosen one, unless it averages two runs and that is not wanted
    /// (`averaging` false: non-seeds sampled from the pool, see
    /// [`FineTuneConfig::sampled_negatives`], or asked for one run); then the best single run tried.
    pub fn applied(&self, averaging: bool) -> OnlineRecipe {
        if averaging || self.recipe != OnlineRecipe::Averaged {
            return self.recipe;
        }
        best_of(&self.tried, |r| r != OnlineRecipe::Averaged)
            .map_or(OnlineRecipe::AsConfigured, |i| self.tried[i].0)
    }

    /// Each recipe tried and its validation mean AUC, for people: "as configured 0.8240, …".
    pub fn tried_summary(&self) -> String {
        self.tried
            .iter()
            .map(|(r, auc)| format!("{} {auc:.4}", r.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The index of the highest finite mean AUC among the recipes `keep` lets in, the earliest on a tie.
fn best_of(tried: &[(OnlineRecipe, f64)], keep: impl Fn(OnlineRecipe) -> bool) -> Option<usize> {
    tried
        .iter()
        .enumerate()
        .filter(|(_, (r, a))| keep(*r) && a.is_finite())
        .fold(None::<(usize, f64)>, |best, (i, &(_, a))| match best {
            Some((_, b)) if b >= a => best,
            _ => Some((i, a)),
        })
        .map(|(i, _)| i)
}

/// Fine-tunes `general` (an autodiff model) on the validation campaigns with each recipe that applies
/// to it and keeps one by [`OnlineChoice::pick`] with `margin` (0: the highest mean AUC), as the
/// validation campaigns chose the kept iteration. `as_configured`: that recipe's per-campaign AUCs
/// where they are known already (the fit's best validation, on these weights: the fine-tunes are
/// seeded, so they would repeat). `averaging`: whether [`OnlineRecipe::Averaged`] is among them
/// ([`crate::meta::MetaConfig::online_average`]). Returns the choice and the chosen recipe's
/// per-campaign AUCs.
pub fn choose_online(
    validation: &Validation,
    general: &MetaHeac,
    as_configured: Option<Vec<Option<f64>>>,
    averaging: bool,
    margin: f64,
) -> Result<(OnlineChoice, Vec<Option<f64>>), NonFinite> {
    choose_online_from(validation, general, as_configured, averaging, margin, None)
}

/// [`choose_online`] for the online stage as it will run with the similar campaigns' prior: each
/// validation campaign starts from the prior of `deployed` (the library the record carries, the
/// campaign itself left out, as [`choose_similar`] gives it), and the recipes are compared on the
/// validation campaigns split again ([`Validation::recipe_split`]), not on the rows the kept
/// iteration was chosen on with the configured recipe (which flatter that recipe). The recipe
/// [`choose_online`] chose at the end of the fit was chosen without the prior, which changes what
/// the wide fit and the Adam steps start from.
pub fn choose_online_with_prior(
    validation: &Validation,
    general: &MetaHeac,
    deployed: &Library,
    averaging: bool,
    margin: f64,
) -> Result<(OnlineChoice, Vec<Option<f64>>), NonFinite> {
    let fresh = validation.recipe_split();
    choose_online_from(&fresh, general, None, averaging, margin, Some(deployed))
}

fn choose_online_from(
    validation: &Validation,
    general: &MetaHeac,
    as_configured: Option<Vec<Option<f64>>>,
    averaging: bool,
    margin: f64,
    library: Option<&Library>,
) -> Result<(OnlineChoice, Vec<Option<f64>>), NonFinite> {
    let wide = !general.wide.is_empty();
    let finetune = &validation.finetune;
    let mut tried = Vec::new();
    let mut per_campaign = Vec::new();
    let recipes = OnlineRecipe::ALL
        .into_iter()
        .filter(|&r| r.applies(wide) && (averaging || r != OnlineRecipe::Averaged));
    // Where the average is tried and is the average of the two single runs tried, all three come
    // from the same two fine-tunes.
    let both = if averaging && OnlineRecipe::Averaged.apply(finetune.clone()).soups(wide) {
        Some(validation.both_and_averaged_from(general, finetune, library)?)
    } else {
        None
    };
    for recipe in recipes {
        let aucs = match (recipe, &as_configured, &both) {
            (OnlineRecipe::AsConfigured, Some(a), _) => a.clone(),
            (OnlineRecipe::NoWideFit, _, Some([adam, _, _])) => adam.clone(),
            (OnlineRecipe::WideOnly, _, Some([_, wide_only, _])) => wide_only.clone(),
            (OnlineRecipe::Averaged, _, Some([_, _, averaged])) => averaged.clone(),
            _ => validation.aucs_from(general, &recipe.apply(finetune.clone()), library)?,
        };
        tried.push((recipe, mean_of(&aucs)));
        per_campaign.push(aucs);
    }
    let best = OnlineChoice::pick(&tried, &per_campaign, margin);
    Ok((
        OnlineChoice {
            recipe: tried[best].0,
            tried,
            aucs: per_campaign.clone(),
        },
        per_campaign.swap_remove(best),
    ))
}

/// The number of experts the validation campaigns chose ([`MetaConfig::select_experts`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExpertsChoice {
    pub experts: usize,
    /// Each number tried (the configured one first), with its general model's validation mean AUC
    /// as deployed (fine-tuned with the online recipe chosen for it).
    pub tried: Vec<(usize, f64)>,
    /// Each alternative against the configured model over the validation campaigns.
    #[serde(default)]
    pub versus: Vec<Ahead>,
}

/// An alternative general model against the configured one, paired over validation campaigns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ahead {
    pub experts: usize,
    /// Mean of alternative − configured AUC, its standard error, and the campaigns paired.
    pub mean_diff: f64,
    pub std_error: f64,
    pub campaigns: usize,
}

impl Ahead {
    /// `alternative` against `configured` (per-campaign AUCs; campaigns without both left out).
    pub fn of(experts: usize, alternative: &[Option<f64>], configured: &[Option<f64>]) -> Ahead {
        let d: Vec<f64> = alternative
            .iter()
            .zip(configured)
            .filter_map(|(a, c)| Some((*a)? - (*c)?))
            .collect();
        let (mean_diff, sd) = crate::stats::mean_std(&d);
        Ahead {
            experts,
            mean_diff,
            std_error: sd / (d.len() as f64).sqrt(),
            campaigns: d.len(),
        }
    }

    /// Ahead by more than `margin` standard errors, on two campaigns at least. Few validation
    /// campaigns make the mean a noisy guide (on a world with 3 of them the one-expert model led by
    /// 0.007 and trailed by 0.023 on the test campaigns), so the configured model stays unless the
    /// lead stands out from the campaign-to-campaign spread.
    pub fn clears(&self, margin: f64) -> bool {
        self.campaigns >= 2 && self.mean_diff > 0.0 && self.mean_diff > margin * self.std_error
    }
}

impl ExpertsChoice {
    /// Of general models with these numbers of experts (the configured one first), each with its fit,
    /// the configured one unless an alternative is ahead on the validation campaigns by more than
    /// `margin` standard errors of the paired difference (then the one furthest ahead). Each is scored
    /// as deployed, by its fit's per-campaign AUCs under the online recipe it chose
    /// ([`FitReport::aucs`]; the fits must share their validation campaigns, as [`setup`] with the
    /// same campaigns and seed gives them). Returns the choice and the index chosen.
    pub fn choose(fits: &[(usize, &FitReport)], margin: f64) -> (ExpertsChoice, usize) {
        let versus: Vec<Ahead> = fits
            .iter()
            .skip(1)
            .map(|(n, r)| Ahead::of(*n, &r.aucs, &fits[0].1.aucs))
            .collect();
        let best = versus
            .iter()
            .enumerate()
            .filter(|(_, v)| v.clears(margin))
            .fold(None::<(usize, f64)>, |best, (i, v)| match best {
                Some((_, m)) if m >= v.mean_diff => best,
                _ => Some((i + 1, v.mean_diff)),
            })
            .map_or(0, |(i, _)| i);
        (
            ExpertsChoice {
                experts: fits[best].0,
                tried: fits.iter().map(|(n, r)| (*n, mean_of(&r.aucs))).collect(),
                versus,
            },
            best,
        )
    }

    /// "8 experts 0.7445, 1 expert 0.7524 (+0.0079 ± 0.0040 over 9 campaigns)".
    pub fn tried_summary(&self) -> String {
        let name = |n: usize| format!("{n} expert{}", if n == 1 { "" } else { "s" });
        self.tried
            .iter()
            .map(|&(n, auc)| {
                let vs = self
                    .versus
                    .iter()
                    .find(|v| v.experts == n)
                    .map_or(String::new(), |v| {
                        format!(
                            " ({:+.4} ± {:.4} over {} campaigns)",
                            v.mean_diff, v.std_error, v.campaigns
                        )
                    });
                format!("{} {auc:.4}{vs}", name(n))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A general model's validation campaigns with and without the similar campaigns' prior
/// ([`choose_similar`]), and whether the online stage takes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimilarChoice {
    /// Taken: by the rule (`pretrain` and `bench` then set it to whether the record carries a
    /// library, which [`crate::meta::SimilarRule::Always`] and a library's k > 0 also decide).
    pub used: bool,
    /// The `k` of the library the record would carry (its leave-one-out choice; 0: no prior,
    /// nothing fine-tuned).
    pub k: usize,
    /// Validation mean AUC without and with the prior (the online recipe chosen, the same seeds).
    pub without: f64,
    pub with: f64,
    /// With against without, paired over the validation campaigns (`experts` unused).
    pub ahead: Ahead,
    /// The standard errors the lead had to clear.
    pub margin: f64,
    /// Each validation campaign's AUC without and with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aucs_without: Vec<Option<f64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aucs_with: Vec<Option<f64>>,
}

impl SimilarChoice {
    /// "with 0.7612, without 0.7544 (+0.0068 ± 0.0031 over 9 campaigns; k = 10)".
    pub fn summary(&self) -> String {
        format!(
            "with {:.4}, without {:.4} ({:+.4} ± {:.4} over {} campaigns; k = {})",
            self.with,
            self.without,
            self.ahead.mean_diff,
            self.ahead.std_error,
            self.ahead.campaigns,
            crate::similar::k_name(self.k)
        )
    }
}

/// Whether `general` (an autodiff model with a wide part) is better fine-tuned from the prior of the
/// similar past campaigns ([`crate::similar`]): each validation campaign fine-tuned as `recipe` says
/// with and without the prior from its own fine-tuning rows, as the online stage would take it from
/// `deployed` (the library the record would carry: every training campaign's LR, with the `k` its
/// leave-one-out chose), leaving the campaign itself out; both on the validation campaigns split
/// again ([`Validation::similar_split`]), since the rows the kept weights, recipe and experts were
/// chosen on favour the model without the prior (on those rows the validation campaigns put it
/// behind on every seed of the survey and of InstEval, where the test campaigns put it ahead).
/// `used` says whether the rule takes it: its lead clears `margin` standard errors of the paired
/// difference ([`Ahead::clears`]; 0: a higher mean on two campaigns at least), or whatever the lead
/// with [`SimilarRule::Always`]; [`settle_similar`] then decides. `None` without a wide part or
/// validation campaigns, or with [`SimilarRule::Never`].
pub fn choose_similar(
    validation: &Validation,
    general: &MetaHeac,
    recipe: OnlineRecipe,
    deployed: &Library,
    rule: SimilarRule,
    margin: f64,
) -> Result<Option<SimilarChoice>, NonFinite> {
    if general.wide.is_empty() || validation.is_empty() || rule == SimilarRule::Never {
        return Ok(None);
    }
    let fresh = validation.similar_split();
    let finetune = recipe.apply(validation.finetune.clone());
    let aucs_without = fresh.aucs_as(general, &finetune)?;
    let aucs_with = match deployed.k {
        0 => aucs_without.clone(),
        _ => fresh.aucs_with_library(general, &finetune, deployed)?,
    };
    let ahead = Ahead::of(0, &aucs_with, &aucs_without);
    Ok(Some(SimilarChoice {
        used: deployed.k > 0 && (rule == SimilarRule::Always || ahead.clears(margin)),
        k: deployed.k,
        without: mean_of(&aucs_without),
        with: mean_of(&aucs_with),
        ahead,
        margin,
        aucs_without,
        aucs_with,
    }))
}

/// Whether the online stage takes the prior of `deployed` (the library the record would carry: every
/// training campaign's LR) under `rule`, given the validation campaigns' comparison where one was made
/// ([`choose_similar`]; its `used` becomes the answer): never where leaving each training campaign
/// out chose k = 0 (no prior to take).
pub fn settle_similar(
    rule: SimilarRule,
    choice: &mut Option<SimilarChoice>,
    deployed: &Library,
) -> bool {
    let taken = deployed.k > 0
        && match rule {
            SimilarRule::Always => true,
            SimilarRule::Choose => choice.as_ref().is_some_and(|c| c.used),
            SimilarRule::Never => false,
        };
    if let Some(c) = choice {
        c.used = taken;
    }
    taken
}

/// The mean of the values present (NaN when none is).
pub fn mean_of(v: &[Option<f64>]) -> f64 {
    let present: Vec<f64> = v.iter().flatten().copied().collect();
    crate::stats::mean_std(&present).0
}

/// A meta-trainer on the training campaigns left after the validation ones are held out, and the
/// validation that decides when it stops: what `pretrain` and `bench` both run before [`fit`].
pub struct Setup<'a> {
    pub trainer: MetaTrainer<'a>,
    pub validation: Validation<'a>,
    /// Campaigns meta-trained on (`validation.len()` are held out).
    pub train_campaigns: usize,
}

/// Splits `campaigns` by `meta.val_fraction`, and builds the trainer (on `model`, an autodiff model)
/// and the validation (fine-tuning as `finetune`, bounded by `meta.val_max_steps`).
pub fn setup<'a>(
    model: MetaHeac,
    meta: MetaConfig,
    finetune: &FineTuneConfig,
    users: &'a UserTable,
    campaigns: &[&'a Campaign],
    seed: u64,
) -> Setup<'a> {
    let (train, val) = split_campaigns(campaigns, meta.val_fraction, seed);
    // Training-time validation scores single runs, the recipe choice included: the kept iteration
    // and the choices of recipe and experts were measured that way, the online average of two runs
    // (`FineTuneConfig::soup`) on top of them.
    let val_finetune = finetune
        .clone()
        .with_max_steps(finetune.max_steps.min(meta.val_max_steps))
        .with_soup(false);
    let validation = validation_of(users, &val, val_finetune, &meta, seed);
    Setup {
        train_campaigns: train.len(),
        trainer: MetaTrainer::new(model, meta, users, &train, seed.wrapping_add(1)),
        validation,
    }
}

/// The validation campaigns [`setup`] held out of `campaigns` for `meta` and `seed` (the same split and
/// rows), fine-tuned as `finetune` says without the cap of training-time validation: for choosing the
/// online stage's settings on a trained general model (`lookalike eval --on validation`), never on
/// test campaigns.
pub fn held_out<'a>(
    meta: &MetaConfig,
    finetune: FineTuneConfig,
    users: &'a UserTable,
    campaigns: &[&'a Campaign],
    seed: u64,
) -> Validation<'a> {
    let (_, val) = split_campaigns(campaigns, meta.val_fraction, seed);
    validation_of(users, &val, finetune, meta, seed)
}

/// The validation over campaigns `val`: the rows kept and their halves depend only on `meta` and
/// `seed`, so [`setup`] and [`held_out`] see the same ones.
fn validation_of<'a>(
    users: &'a UserTable,
    val: &[&'a Campaign],
    finetune: FineTuneConfig,
    meta: &MetaConfig,
    seed: u64,
) -> Validation<'a> {
    Validation::new(users, val, finetune, meta, seed ^ 0x5eed)
}

/// What [`fit`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// An iteration with its loss and rows read.
    Step {
        iteration: usize,
        total: usize,
        loss: f32,
        rows: usize,
    },
    /// A validation: mean AUC after fine-tuning, and whether it is the best so far.
    Validated {
        iteration: usize,
        auc: f64,
        best: bool,
    },
}

/// The outcome of [`fit`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FitReport {
    pub iterations: usize,
    /// Iteration whose weights were kept (the last one without validation).
    pub best_iteration: usize,
    pub best_auc: Option<f64>,
    /// (iteration, validation mean AUC).
    pub curve: Vec<(usize, f64)>,
    pub rows: usize,
    /// Mean loss of the last iterations.
    pub final_loss: Option<f32>,
    /// Stopped after a checkpoint on request (the run is to be resumed), not finished.
    #[serde(default)]
    pub halted: bool,
    /// The online recipe the validation campaigns chose for the kept weights
    /// ([`MetaConfig::online_select`]).
    #[serde(default)]
    pub online: Option<OnlineChoice>,
    /// Each validation campaign's AUC for the kept weights, fine-tuned with the online recipe in
    /// `online` (as configured until one is chosen): what [`ExpertsChoice::choose`] pairs, so it need
    /// not fine-tune again. Empty without validation (and in checkpoints written before it was kept,
    /// until the fit ends).
    #[serde(default)]
    pub aucs: Vec<Option<f64>>,
    /// Stage-1 rows of the campaigns meta-trained on (the validation ones held out): what
    /// [`refit_iterations`] scales by.
    #[serde(default)]
    pub fit_rows: usize,
}

/// The run's state after an iteration.
fn checkpoint(
    trainer: &mut MetaTrainer,
    state: &Stopping,
    report: &FitReport,
    recent: &[f32],
    total: usize,
    run: serde_json::Value,
) -> Result<Checkpoint, FitError> {
    let weights = |m: &MetaHeac| {
        crate::record::weights_to_bytes(m, crate::record::Precision::F32)
            .map_err(|e| FitError::Checkpoint(format!("saving the weights: {e}")))
    };
    Ok(Checkpoint {
        header: CheckpointHeader {
            run,
            trainer: trainer.state(),
            total,
            report: report.clone(),
            // Only the last 50 enter the final mean.
            recent: recent[recent.len().saturating_sub(50)..].to_vec(),
            since_best: state.since_best,
            configured: None,
        },
        model: weights(trainer.model())?,
        optimizer: trainer.optimizer_bytes().map_err(FitError::Checkpoint)?,
        embeddings: trainer.embedding_optimizer_bytes(),
        best: state.best.as_ref().map(|(_, m)| weights(m)).transpose()?,
        configured: None,
    })
}

/// Refuses a checkpoint of another run: `saved` is the run it was written by, `now` this one's.
pub fn same_run(saved: &serde_json::Value, now: &serde_json::Value) -> Result<(), FitError> {
    match saved == now {
        true => Ok(()),
        false => Err(FitError::Checkpoint(differences(saved, now))),
    }
}

/// Which settings of a checkpoint's run differ from this one's (top-level keys).
fn differences(saved: &serde_json::Value, now: &serde_json::Value) -> String {
    let keys: Vec<String> = match (saved.as_object(), now.as_object()) {
        (Some(a), Some(b)) => a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| k.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        _ => vec!["everything".into()],
    };
    format!(
        "the checkpoint is of another run (different {}): resume with the same data and flags",
        keys.join(", ")
    )
}

/// The early-stopping state of [`fit`].
struct Stopping {
    best: Option<(f64, MetaHeac)>,
    since_best: usize,
    patience: usize,
    /// No stop before this iteration ([`MetaConfig::val_min_passes`]).
    min_iterations: usize,
}

impl Stopping {
    /// Validates `model`; keeps it when best. Returns whether to stop.
    fn validate(
        &mut self,
        v: &Validation,
        iteration: usize,
        model: MetaHeac,
        report: &mut FitReport,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<bool, NonFinite> {
        let aucs = v.aucs(&model)?;
        let a = mean_of(&aucs);
        report.curve.push((iteration, a));
        let better = self.best.as_ref().is_none_or(|(b, _)| a > *b);
        on_progress(Progress::Validated {
            iteration,
            auc: a,
            best: better,
        });
        if better {
            self.best = Some((a, model));
            report.best_iteration = iteration;
            report.best_auc = Some(a);
            report.aucs = aucs;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        Ok(self.since_best >= self.patience && iteration >= self.min_iterations)
    }
}

/// Meta-trains. Without validation: the trainer's `epochs` (or `limit` iterations, if fewer). With it:
/// until `val_patience` validations bring no better AUC (and not before `val_min_passes` passes), at
/// most `max_iterations` (or `limit`), then the best weights are put back. A non-finite loss stops it.
pub fn fit(
    trainer: &mut MetaTrainer,
    validation: Option<&Validation>,
    limit: Option<usize>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<FitReport, NonFinite> {
    fit_resumable(trainer, validation, limit, None, None, on_progress).map_err(|e| match e {
        FitError::NonFinite(e) => e,
        FitError::Checkpoint(_) => unreachable!("no checkpoints without checkpointing"),
    })
}

/// Why [`fit_resumable`] stopped short.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    NonFinite(#[from] NonFinite),
    #[error("{0}")]
    Checkpoint(String),
}

/// When and how [`fit_resumable`] saves its state.
pub struct Checkpointing<'c> {
    /// What the run was started with; stored in every checkpoint, and a resume must match it.
    pub run: serde_json::Value,
    /// Asked after every iteration: write a checkpoint now?
    pub due: &'c mut dyn FnMut(usize) -> bool,
    /// Writes one (the CLI: atomically). `Ok(true)` stops the run there, as a kill would.
    pub write: &'c mut dyn FnMut(&Checkpoint) -> Result<bool, String>,
}

/// [`fit`] that can write checkpoints as it goes and continue from one (`resume`, with the trainer
/// set up as for the original run): the resumed run ends with the weights an uninterrupted one
/// would have (same seed, CPU). A run stopped by `write` reports `halted`.
pub fn fit_resumable(
    trainer: &mut MetaTrainer,
    validation: Option<&Validation>,
    limit: Option<usize>,
    resume: Option<&Checkpoint>,
    mut checkpointing: Option<Checkpointing>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<FitReport, FitError> {
    let cfg = trainer.config.clone();
    let validation = validation.filter(|v| !v.is_empty());
    let total = match validation {
        Some(_) => cfg.max_iterations,
        None => trainer.total_iterations(),
    };
    let total = limit.map_or(total, |l| l.min(total));
    let mut report = FitReport {
        fit_rows: trainer.training_rows(),
        ..FitReport::default()
    };
    let mut state = Stopping {
        best: None,
        since_best: 0,
        patience: cfg.val_patience.max(1),
        min_iterations: trainer.patience_floor(),
    };
    // With id dropout the unknown rows are trained: rows training never touches get them, before
    // every validation (so it measures what a new campaign meets) and at the end.
    let seen = (cfg.id_dropout > 0.0).then(|| trainer.seen());
    let finish = |m: MetaHeac| match &seen {
        Some(s) => fill_unseen(m, s),
        None => m,
    };
    let mut recent: Vec<f32> = Vec::new();
    let first = match resume {
        Some(c) => {
            let h = &c.header;
            if let Some(cp) = &checkpointing {
                same_run(&h.run, &cp.run)?;
            }
            if h.total != total {
                return Err(FitError::Checkpoint(format!(
                    "the checkpoint's run takes {} iterations, this one {total}",
                    h.total
                )));
            }
            let template = trainer.model().clone();
            let load = |bytes: &[u8]| {
                crate::record::load_weights(template.clone(), bytes)
                    .map_err(|e| FitError::Checkpoint(format!("the checkpoint's weights: {e}")))
            };
            let model = load(&c.model)?;
            trainer
                .restore(&h.trainer, model, &c.optimizer, c.embeddings.as_deref())
                .map_err(FitError::Checkpoint)?;
            state.best = match (&c.best, h.report.best_auc) {
                (Some(b), Some(auc)) => Some((auc, load(b)?)),
                _ => None,
            };
            state.since_best = h.since_best;
            report = FitReport {
                fit_rows: trainer.training_rows(),
                ..h.report.clone()
            };
            recent = h.recent.clone();
            h.trainer.iteration + 1
        }
        None => {
            if let Some(v) = validation {
                state.validate(
                    v,
                    0,
                    finish(trainer.model().clone()),
                    &mut report,
                    on_progress,
                )?;
            }
            1
        }
    };
    for i in first..=total {
        let (s, loss) = checked_step(trainer, i)?;
        report.rows += s.rows;
        report.iterations = i;
        recent.push(loss);
        on_progress(Progress::Step {
            iteration: i,
            total,
            loss,
            rows: s.rows,
        });
        if let Some(v) = validation
            && (i % cfg.val_every.max(1) == 0 || i == total)
            && state.validate(
                v,
                i,
                finish(trainer.model().clone()),
                &mut report,
                on_progress,
            )?
        {
            break;
        }
        if let Some(cp) = checkpointing.as_mut()
            && i < total
            && (cp.due)(i)
        {
            let c = checkpoint(trainer, &state, &report, &recent, total, cp.run.clone())?;
            if (cp.write)(&c).map_err(FitError::Checkpoint)? {
                report.halted = true;
                return Ok(report);
            }
        }
    }
    let tail = &recent[recent.len().saturating_sub(50)..];
    report.final_loss = (!tail.is_empty()).then(|| tail.iter().sum::<f32>() / tail.len() as f32);
    match state.best {
        Some((_, model)) => trainer.set_model(model),
        None => {
            report.best_iteration = report.iterations;
            let m = finish(trainer.model().clone());
            trainer.set_model(m);
        }
    }
    if cfg.online_select
        && let Some(v) = validation
    {
        // A checkpoint written before the per-campaign AUCs were kept has none: validate again.
        let known = (report.aucs.len() == v.len()).then(|| std::mem::take(&mut report.aucs));
        let (choice, aucs) = choose_online(
            v,
            trainer.model(),
            known,
            cfg.online_average,
            cfg.online_margin,
        )?;
        report.online = Some(choice);
        report.aucs = aucs;
    } else if let Some(v) = validation
        && report.aucs.len() != v.len()
    {
        // The same for a run resumed from such a checkpoint that validated nothing better since.
        report.aucs = v.aucs(trainer.model())?;
    }
    Ok(report)
}

/// One iteration, and its training loss (the query loss; the support loss in `none` mode), which
/// must be finite.
fn checked_step(trainer: &mut MetaTrainer, i: usize) -> Result<(StepStats, f32), NonFinite> {
    let s = trainer.step();
    let loss = if s.query_loss.is_nan() {
        s.support_loss
    } else {
        s.query_loss
    };
    if !loss.is_finite() {
        return Err(NonFinite::new(
            format!("the training loss at iteration {i}"),
            loss,
        ));
    }
    Ok((s, loss))
}

/// Iterations of a refit on `all_rows` training rows that read them as often as `kept` iterations
/// read the fit's `fit_rows` (tasks are drawn in proportion to their rows, so a pass takes longer
/// with the validation campaigns in).
pub fn refit_iterations(kept: usize, fit_rows: usize, all_rows: usize) -> usize {
    match fit_rows {
        0 => kept,
        _ => (kept as f64 * all_rows as f64 / fit_rows as f64).round() as usize,
    }
}

/// The general model meta-trained again from `initial` (the fit's initial weights) on every training
/// campaign, the validation ones included ([`MetaConfig::val_refit`]), for as many passes over the
/// rows as the fit's kept iteration made ([`refit_iterations`]), without validation. Validation has
/// then done its work (the kept iteration, the online recipe, the experts): training on its
/// campaigns too gives the general model a fifth more campaigns and trains the rows of the users
/// only they hold. Returns the weights and the iterations run; `None` when the fit held no campaign
/// out (it trained on them all already) or kept its initial weights (there is nothing to refit).
pub fn refit(
    initial: MetaHeac,
    meta: MetaConfig,
    users: &UserTable,
    campaigns: &[&Campaign],
    seed: u64,
    report: &FitReport,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Option<(MetaHeac, usize)>, NonFinite> {
    // A fit validates its initial weights first, so no validation AUC means no validation campaigns.
    if report.best_auc.is_none() || report.best_iteration == 0 || report.fit_rows == 0 {
        return Ok(None);
    }
    // The seed the fit's trainer had (see [`setup`]).
    let mut trainer = MetaTrainer::new(
        initial,
        meta.clone(),
        users,
        campaigns,
        seed.wrapping_add(1),
    );
    let total = refit_iterations(
        report.best_iteration,
        report.fit_rows,
        trainer.training_rows(),
    );
    for i in 1..=total {
        let (s, loss) = checked_step(&mut trainer, i)?;
        on_progress(Progress::Step {
            iteration: i,
            total,
            loss,
            rows: s.rows,
        });
    }
    let seen = (meta.id_dropout > 0.0).then(|| trainer.seen());
    let model = trainer.into_model();
    let model = match seen {
        Some(s) => fill_unseen(model, &s),
        None => model,
    };
    Ok(Some((model, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Role;

    fn rows(labels: &[bool], first_user: u32) -> Vec<Row> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &label)| Row {
                user: first_user + i as u32,
                label,
            })
            .collect()
    }

    /// The alternative replaces the configured model only when its lead over the validation campaigns
    /// is beyond `margin` standard errors of the paired difference; campaigns without both AUCs are
    /// left out.
    #[test]
    fn an_alternative_must_be_ahead_beyond_the_noise() {
        let configured = [Some(0.70), Some(0.80), None, Some(0.60)];
        // +0.02, +0.04, +0.00: mean 0.02, sd 0.02, se 0.0115.
        let steady = Ahead::of(
            1,
            &[Some(0.72), Some(0.84), Some(0.9), Some(0.60)],
            &configured,
        );
        assert_eq!(steady.campaigns, 3);
        assert!((steady.mean_diff - 0.02).abs() < 1e-12);
        assert!((steady.std_error - 0.02 / 3f64.sqrt()).abs() < 1e-12);
        assert!(steady.clears(1.0) && !steady.clears(2.0));
        // +0.10, −0.04, −0.03: ahead on the mean, not beyond its noise.
        let noisy = Ahead::of(1, &[Some(0.80), Some(0.76), None, Some(0.57)], &configured);
        assert!(noisy.mean_diff > 0.0 && !noisy.clears(1.0));
        assert!(noisy.clears(0.0));
        // One campaign is no evidence; a lead with no spread is.
        assert!(!Ahead::of(1, &[Some(0.9)], &[Some(0.1)]).clears(0.0));
        assert!(Ahead::of(1, &[Some(0.9), Some(0.8)], &[Some(0.8), Some(0.7)]).clears(1.0));
        assert!(!Ahead::of(1, &[Some(0.8), Some(0.7)], &[Some(0.8), Some(0.7)]).clears(0.0));
        let choice = ExpertsChoice {
            experts: 8,
            tried: vec![(8, 0.7), (1, 0.72)],
            versus: vec![steady],
        };
        assert_eq!(
            choice.tried_summary(),
            "8 experts 0.7000, 1 expert 0.7200 (+0.0200 ± 0.0115 over 3 campaigns)"
        );
    }

    /// Cross-fitting scores both halves, each after "fitting" on the other, and averages the two AUCs;
    /// without it only the first half is scored. A half without both labels is left out.
    #[test]
    fn crossfit_scores_both_halves() {
        let users = UserTable::default();
        let campaign = Campaign {
            aid: "1".into(),
            ad: vec![],
            role: Role::Train,
            stage1: vec![],
            stage2: vec![],
        };
        // Scores are the user ids, so each half's AUC is known.
        let sets = [
            ValidationSet {
                campaign: &campaign,
                tune: rows(&[true, false, false], 0),
                eval: rows(&[false, false, true], 10),
            },
            ValidationSet {
                campaign: &campaign,
                tune: rows(&[true, false], 0),
                eval: rows(&[false, false], 10),
            },
        ];
        let validation = |crossfit| Validation {
            users: &users,
            sets: sets.to_vec(),
            finetune: FineTuneConfig::new(),
            seed: 0,
            crossfit,
            threads: 2,
            max_rows: usize::MAX,
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let by_user = |i: usize, fold: u64, tune: &[Row], eval: &[Row]| {
            seen.lock().unwrap().push((i, fold, tune.len(), eval.len()));
            Ok(eval.iter().map(|r| r.user as f32).collect())
        };
        let one = validation(false).per_campaign(by_user).unwrap();
        assert_eq!(one, vec![Some(1.0), None]);
        // Campaign 0: AUC 1 on its second half, 0 on its first; campaign 1: only its first half has
        // both labels, and it ranks them wrong.
        let both = validation(true).per_campaign(by_user).unwrap();
        assert_eq!(both, vec![Some(0.5), Some(0.0)]);
        let mut seen = seen.into_inner().unwrap().split_off(2);
        seen.sort();
        assert_eq!(
            seen,
            [(0, 0, 3, 3), (0, 1, 3, 3), (1, 0, 2, 2), (1, 1, 2, 2)]
        );
    }
}
