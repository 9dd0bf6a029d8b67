//! The methods of the paper's Tables 2 and 4, all on the same model code: every neural baseline is a
//! MetaHeac configuration (one expert and one critic make the gates constant, i.e. a plain MLP), a
//! general model trained one way, and a rule for what is fresh, frozen or fine-tuned online.

use crate::data::{Batch, Row, UserTable};
use crate::finetune::{CurvePoint, FineTuneConfig, tune_and_score};
use crate::finite::{self, NonFinite};
use crate::lr::{self, LrConfig, OneHot};
use crate::meta::{EmbeddingUpdate, MetaConfig, MetaGrad};
use crate::model::{Init, Inputs, MetaHeac, MetaHeacConfig};
use burn::module::Module;
use burn::tensor::Tensor;

/// A method of the comparison, named as in the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Logistic regression on one-hot user tokens, per campaign (one-stage).
    Lr,
    /// LR over a prior from the training campaigns most like this one (not in the paper: a
    /// look-alike baseline without a network; [`crate::similar`]).
    LrSimilar,
    /// An MLP trained from scratch on the campaign's rows (one-stage).
    MlpOneStage,
    /// Embeddings from plain pre-training, a fresh MLP, all fine-tuned.
    MlpEmb,
    /// Cosine similarity of pre-trained user vectors to the seeds' centroid (no training).
    Pinterest,
    /// Pre-trained user representations, frozen, under a fresh MLP fitted per campaign.
    Hubble,
    /// An MLP pre-trained on all training campaigns, fine-tuned.
    MlpPre,
    /// The pre-trained MLP as a shared bottom with a fresh campaign tower, fine-tuned.
    SharedBottomPre,
    /// Experts mixed by a task gate (one critic), pre-trained plainly, fine-tuned.
    MmoePre,
    /// The product's MetaHeac: its validation campaigns choose between its experts and one
    /// ([`MetaConfig::select_experts`]; `bench` fits both general models, the one-expert one being
    /// w/o HE's). The ablations keep their configured experts.
    MetaHeac,
    /// One critic.
    MetaHeacWoHc,
    /// One expert.
    MetaHeacWoHe,
    /// Pre-trained on MetaHeac's batches without the inner step.
    MetaHeacWoMeta,
    /// MetaHeac whose embedding tables take dense Adam steps (the reference's optimizer), to compare
    /// with the lazy steps of the default.
    MetaHeacDense,
    /// MetaHeac whose offline validation scores one half of each validation campaign (the earlier
    /// rule), to compare with the default's cross-fitted halves.
    MetaHeacOneHalf,
    /// MetaHeac fine-tuned with the online rule as configured, whatever its validation campaigns
    /// would choose ([`MetaConfig::online_select`] off); same general model as `MetaHeac`.
    MetaHeacFixed,
    /// MetaHeac without the wide part (which the paper does not have): what it adds to the network.
    MetaHeacWoWide,
    /// The configured MetaHeac and its one-expert model (the two the experts choice compares), each
    /// fine-tuned with its own recipe, their log-odds averaged.
    MetaHeacEnsemble,
    /// MetaHeac's general model fine-tuned twice, without the wide fit (Adam only) and with the wide
    /// fit alone (no Adam), their log-odds averaged (two networks; [`Method::MetaHeacSoup`] averages
    /// their weights), whatever recipe its validation campaigns chose.
    MetaHeacBlend,
    /// MetaHeac fine-tuned by two runs averaged ([`FineTuneConfig::soup`]) instead of the recipe its
    /// validation campaigns chose; same general model as `MetaHeac`.
    MetaHeacSoup,
    /// MetaHeac fine-tuned by the best single run its validation campaigns tried (the recipe it
    /// would choose without [`crate::finetune::OnlineRecipe::Averaged`], as `expand` applies it);
    /// same general model as `MetaHeac`.
    MetaHeacSingle,
    /// MetaHeac fine-tuned by the recipe its validation campaigns choose with a margin: the average
    /// of two runs unless another recipe leads it by more than the experts choice's margin of
    /// standard errors ([`crate::schedule::OnlineChoice::with_margin`]); same general model.
    MetaHeacMargin,
    /// MetaHeac whose general model, before it is fine-tuned on a campaign, takes the prior of the
    /// training campaigns most like it ([`crate::similar::fold_into`]) in its wide part; same general
    /// model and recipe as `MetaHeac`.
    MetaHeacSimilar,
    /// MetaHeac fine-tuned without that prior on every campaign, whatever its validation campaigns
    /// chose; same general model and recipe as `MetaHeac` (with `MetaHeacSimilar`, both arms of the
    /// choice on the same campaigns).
    MetaHeacWoSimilar,
    /// `MetaHeacSimilar` fine-tuned by the recipe its validation campaigns choose with that prior
    /// folded in, on a fresh split of them ([`crate::schedule::choose_online_with_prior`]), instead
    /// of the one they chose without it at the end of the fit; same general model.
    MetaHeacRecipePrior,
}

/// How a method's general model is trained (one per kind and seed, shared between methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum General {
    MetaHeac,
    WoHc,
    WoHe,
    WoMeta,
    /// MetaHeac with dense Adam on the embedding tables.
    Dense,
    /// MetaHeac validated on one half of each validation campaign.
    OneHalf,
    /// MetaHeac without the wide part.
    WoWide,
    /// One expert, one critic, plain training (MLP+pre-training, Shared-Bottom, MLP+emb, Hubble, Pinterest).
    Mlp,
    /// n experts, one critic, plain training.
    Mmoe,
}

impl Method {
    pub const ALL: [Method; 12] = [
        Method::Lr,
        Method::MlpOneStage,
        Method::MlpEmb,
        Method::Pinterest,
        Method::Hubble,
        Method::MlpPre,
        Method::SharedBottomPre,
        Method::MmoePre,
        Method::MetaHeac,
        Method::MetaHeacWoHc,
        Method::MetaHeacWoHe,
        Method::MetaHeacWoMeta,
    ];

    /// Methods run only when asked for.
    pub const EXTRA: [Method; 13] = [
        Method::LrSimilar,
        Method::MetaHeacDense,
        Method::MetaHeacOneHalf,
        Method::MetaHeacFixed,
        Method::MetaHeacWoWide,
        Method::MetaHeacEnsemble,
        Method::MetaHeacBlend,
        Method::MetaHeacSoup,
        Method::MetaHeacSingle,
        Method::MetaHeacMargin,
        Method::MetaHeacSimilar,
        Method::MetaHeacWoSimilar,
        Method::MetaHeacRecipePrior,
    ];

    /// The paper's name (the key in `bench`'s JSON).
    pub fn name(self) -> &'static str {
        match self {
            Method::Lr => "LR",
            Method::LrSimilar => "LR+similar campaigns",
            Method::MlpOneStage => "MLP one-stage",
            Method::MlpEmb => "MLP+emb",
            Method::Pinterest => "Pinterest",
            Method::Hubble => "Hubble",
            Method::MlpPre => "MLP+pre-training",
            Method::SharedBottomPre => "Shared-Bottom+pre-training",
            Method::MmoePre => "MMoE+pre-training",
            Method::MetaHeac => "MetaHeac",
            Method::MetaHeacWoHc => "MetaHeac w/o HC",
            Method::MetaHeacWoHe => "MetaHeac w/o HE",
            Method::MetaHeacWoMeta => "MetaHeac w/o Meta",
            Method::MetaHeacDense => "MetaHeac dense Adam",
            Method::MetaHeacOneHalf => "MetaHeac one validation half",
            Method::MetaHeacFixed => "MetaHeac fixed online rule",
            Method::MetaHeacWoWide => "MetaHeac w/o wide",
            Method::MetaHeacEnsemble => "MetaHeac ensemble",
            Method::MetaHeacBlend => "MetaHeac recipe blend",
            Method::MetaHeacSoup => "MetaHeac two runs averaged",
            Method::MetaHeacSingle => "MetaHeac single run",
            Method::MetaHeacMargin => "MetaHeac recipe by margin",
            Method::MetaHeacSimilar => "MetaHeac+similar campaigns",
            Method::MetaHeacWoSimilar => "MetaHeac w/o similar campaigns",
            Method::MetaHeacRecipePrior => "MetaHeac+similar campaigns, recipe chosen with them",
        }
    }

    /// Parses a paper name (case-insensitive) or the short id ([`Method::id`]).
    pub fn parse(s: &str) -> Option<Method> {
        let s = s.trim().to_ascii_lowercase();
        Method::ALL
            .into_iter()
            .chain(Method::EXTRA)
            .find(|m| m.name().to_ascii_lowercase() == s || m.id() == s)
    }

    pub fn id(self) -> &'static str {
        match self {
            Method::Lr => "lr",
            Method::LrSimilar => "lr-similar",
            Method::MlpOneStage => "mlp",
            Method::MlpEmb => "mlp-emb",
            Method::Pinterest => "pinterest",
            Method::Hubble => "hubble",
            Method::MlpPre => "mlp-pre",
            Method::SharedBottomPre => "shared-bottom",
            Method::MmoePre => "mmoe",
            Method::MetaHeac => "metaheac",
            Method::MetaHeacWoHc => "wo-hc",
            Method::MetaHeacWoHe => "wo-he",
            Method::MetaHeacWoMeta => "wo-meta",
            Method::MetaHeacDense => "metaheac-dense",
            Method::MetaHeacOneHalf => "metaheac-half",
            Method::MetaHeacFixed => "metaheac-fixed",
            Method::MetaHeacWoWide => "wo-wide",
            Method::MetaHeacEnsemble => "metaheac-ens",
            Method::MetaHeacBlend => "metaheac-blend",
            Method::MetaHeacSoup => "metaheac-soup",
            Method::MetaHeacSingle => "metaheac-single",
            Method::MetaHeacMargin => "metaheac-margin",
            Method::MetaHeacSimilar => "metaheac-similar",
            Method::MetaHeacWoSimilar => "wo-similar",
            Method::MetaHeacRecipePrior => "metaheac-recipe-prior",
        }
    }

    /// Whether the seed changes its result (LR, with or without the similar campaigns' prior, is a
    /// convex fit with no randomness).
    pub fn uses_seed(self) -> bool {
        !matches!(self, Method::Lr | Method::LrSimilar)
    }

    /// Whether it needs the training campaigns' LR fits ([`Task::library`]).
    pub fn needs_library(self) -> bool {
        matches!(
            self,
            Method::LrSimilar | Method::MetaHeacSimilar | Method::MetaHeacRecipePrior
        )
    }

    /// Whether it fine-tunes with the online recipe its general model's validation campaigns chose
    /// (`meta`: the offline configuration as given; its `online_select` holds for every method but
    /// `MetaHeacFixed`, which never chooses). Choosing does not change the general model's weights,
    /// so methods that choose and methods that do not can share it.
    pub fn chooses_online(self, meta: &MetaConfig) -> bool {
        self != Method::MetaHeacFixed && meta.online_select
    }

    /// The general model it starts from, if any.
    pub fn general(self) -> Option<General> {
        match self {
            Method::Lr | Method::LrSimilar | Method::MlpOneStage => None,
            Method::MlpEmb
            | Method::Pinterest
            | Method::Hubble
            | Method::MlpPre
            | Method::SharedBottomPre => Some(General::Mlp),
            Method::MmoePre => Some(General::Mmoe),
            Method::MetaHeac => Some(General::MetaHeac),
            Method::MetaHeacWoHc => Some(General::WoHc),
            Method::MetaHeacWoHe => Some(General::WoHe),
            Method::MetaHeacWoMeta => Some(General::WoMeta),
            Method::MetaHeacDense => Some(General::Dense),
            Method::MetaHeacOneHalf => Some(General::OneHalf),
            Method::MetaHeacFixed => Some(General::MetaHeac),
            Method::MetaHeacWoWide => Some(General::WoWide),
            Method::MetaHeacEnsemble
            | Method::MetaHeacBlend
            | Method::MetaHeacSoup
            | Method::MetaHeacSingle
            | Method::MetaHeacMargin
            | Method::MetaHeacSimilar
            | Method::MetaHeacWoSimilar
            | Method::MetaHeacRecipePrior => Some(General::MetaHeac),
        }
    }
}

impl General {
    /// The model and offline configuration of this kind, from MetaHeac's.
    pub fn configure(
        self,
        model: &MetaHeacConfig,
        meta: &MetaConfig,
    ) -> (MetaHeacConfig, MetaConfig) {
        let (mut m, mut c) = (model.clone(), meta.clone());
        match self {
            General::MetaHeac => {}
            General::WoHc => m.num_critics = 1,
            General::WoHe => m.num_experts = 1,
            General::WoMeta => c.meta_grad = MetaGrad::NoAdaptation,
            General::Dense => c.embedding_update = EmbeddingUpdate::Dense,
            General::OneHalf => c.val_crossfit = false,
            General::WoWide => m.wide = false,
            General::Mlp => {
                m = mlp_config(&m);
                c.meta_grad = MetaGrad::NoAdaptation;
            }
            General::Mmoe => {
                m.num_critics = 1;
                m.wide = false;
                c.meta_grad = MetaGrad::NoAdaptation;
            }
        }
        (m, c)
    }
}

/// One campaign's expansion by one method: scores of the candidates and the fine-tuning curve.
pub struct Expansion {
    pub scores: Vec<f32>,
    pub curve: Vec<CurvePoint>,
}

impl Expansion {
    /// Two expansions of the same candidates combined by [`mean_log_odds`], with the first one's curve.
    pub fn averaged(a: Expansion, b: &Expansion) -> Expansion {
        Expansion {
            scores: mean_log_odds(&a.scores, &b.scores),
            curve: a.curve,
        }
    }
}

/// What one method needs to expand one campaign.
pub struct Task<'a> {
    pub users: &'a UserTable,
    pub ad: &'a [u32],
    /// Seeds and non-seeds (stage 1).
    pub train: &'a [Row],
    /// Candidates to score (stage 2).
    pub candidates: &'a [Row],
    pub seed: u64,
    /// The training campaigns' LR fits ([`Method::LrSimilar`]'s; `None` for the others).
    pub library: Option<&'a crate::similar::Library>,
}

/// A fresh model of `config` with the embedding tables of `general`.
fn with_embeddings(config: &MetaHeacConfig, general: &MetaHeac, seed: u64) -> MetaHeac {
    let mut fresh = config.init(Init::Seeded(seed), &general.device());
    fresh.user_single = general.user_single.clone();
    fresh.user_multi = general.user_multi.clone();
    fresh.ad = general.ad.clone();
    fresh
}

/// Where a method's online stage starts on one campaign.
pub enum Start {
    /// Methods with nothing to fine-tune (LR, Pinterest) score the candidates at once.
    Scores(Vec<f32>),
    /// The model to fine-tune (on an autodiff device).
    Model(Box<MetaHeac>),
}

/// The start of `method` on one campaign. `general` is its general model (on an autodiff device) where
/// it has one; `scratch` is the model configuration of the one-stage MLP and `device` where it lives.
pub fn start(
    method: Method,
    general: Option<&MetaHeac>,
    scratch: &MetaHeacConfig,
    device: &burn::tensor::Device,
    task: &Task,
    lr_config: &LrConfig,
) -> Result<Start, NonFinite> {
    let need = || general.expect("this method needs its general model");
    let model = match method {
        Method::Lr => {
            let onehot = OneHot::new(&scratch.tables, &scratch.multi_lens);
            let (_, scores) =
                lr::fit_and_score(&onehot, task.users, task.train, task.candidates, lr_config);
            finite::check(&scores, "an LR score")?;
            return Ok(Start::Scores(scores));
        }
        Method::LrSimilar => {
            let library = task
                .library
                .expect("LR+similar campaigns needs the training campaigns' library");
            let scores =
                crate::similar::expand(library, task.users, task.train, task.candidates, lr_config);
            finite::check(&scores, "an LR+similar campaigns score")?;
            return Ok(Start::Scores(scores));
        }
        Method::Pinterest => {
            let scores = seed_similarity(need(), task);
            finite::check(&scores, "a Pinterest similarity")?;
            return Ok(Start::Scores(scores));
        }
        Method::MlpOneStage => mlp_config(scratch).init(Init::Seeded(task.seed), device),
        Method::MlpEmb => with_embeddings(&mlp_config(scratch), need(), task.seed),
        Method::Hubble => {
            let mut m = with_embeddings(&mlp_config(scratch), need(), task.seed);
            m.user_single = m.user_single.into_iter().map(|e| e.no_grad()).collect();
            m.user_multi = m.user_multi.into_iter().map(|e| e.no_grad()).collect();
            m.ad = m.ad.into_iter().map(|e| e.no_grad()).collect();
            m
        }
        Method::MetaHeacSimilar | Method::MetaHeacRecipePrior => {
            let library = task
                .library
                .expect("MetaHeac+similar campaigns needs the training campaigns' library");
            library.fold(need().clone(), task.users, task.train)
        }
        Method::SharedBottomPre => {
            // Keep the pre-trained bottom (embeddings and expert), a fresh tower (critic) per campaign.
            let mut m = need().clone();
            let fresh = mlp_config(scratch).init(Init::Seeded(task.seed), device);
            m.critics = fresh.critics;
            m
        }
        Method::MlpPre
        | Method::MmoePre
        | Method::MetaHeac
        | Method::MetaHeacWoHc
        | Method::MetaHeacWoHe
        | Method::MetaHeacWoMeta
        | Method::MetaHeacDense
        | Method::MetaHeacOneHalf
        | Method::MetaHeacFixed
        | Method::MetaHeacWoWide
        | Method::MetaHeacEnsemble
        | Method::MetaHeacBlend
        | Method::MetaHeacSoup
        | Method::MetaHeacSingle
        | Method::MetaHeacMargin
        | Method::MetaHeacWoSimilar => need().clone(),
    };
    Ok(Start::Model(Box::new(model)))
}

/// Runs `method` on one campaign (see [`start`]), fine-tuning as `finetune` says.
pub fn expand(
    method: Method,
    general: Option<&MetaHeac>,
    scratch: &MetaHeacConfig,
    device: &burn::tensor::Device,
    task: &Task,
    finetune: &FineTuneConfig,
    lr_config: &LrConfig,
) -> Result<Expansion, NonFinite> {
    match start(method, general, scratch, device, task, lr_config)? {
        Start::Scores(scores) => Ok(Expansion {
            scores,
            curve: Vec::new(),
        }),
        Start::Model(model) => {
            let (scores, curve) = tune_and_score(
                *model,
                finetune,
                task.users,
                task.ad,
                task.train,
                task.candidates,
                task.seed,
            )?;
            Ok(Expansion { scores, curve })
        }
    }
}

/// Two models' scores of the same candidates combined: the mean of their log-odds (probabilities
/// clamped away from 0 and 1 so that a saturated score stays finite), mapped back to a probability.
pub fn mean_log_odds(a: &[f32], b: &[f32]) -> Vec<f32> {
    let logit = |p: f32| {
        let p = p.clamp(1e-7, 1.0 - 1e-7) as f64;
        (p / (1.0 - p)).ln()
    };
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let z = 0.5 * (logit(x) + logit(y));
            (1.0 / (1.0 + (-z).exp())) as f32
        })
        .collect()
}

/// The paper's MLP: MetaHeac's layers with one expert, one critic and no wide part.
pub fn mlp_config(base: &MetaHeacConfig) -> MetaHeacConfig {
    base.clone()
        .with_num_experts(1)
        .with_num_critics(1)
        .with_wide(false)
}

/// Pinterest-style look-alike: cosine similarity of each candidate's user vector to the centroid of
/// the seeds' user vectors, minus that to the non-seeds' centroid (a linear score in the embedding
/// space; rows are scored without any training).
fn seed_similarity(general: &MetaHeac, task: &Task) -> Vec<f32> {
    let model = general.valid();
    let vectors = |rows: &[Row]| -> Tensor<2> {
        let parts: Vec<Tensor<2>> = rows
            .chunks(4096)
            .map(|c| {
                let b = Batch::gather(task.users, &model.multi_lens, task.ad, c);
                let v = model.user_vectors(&Inputs::new(&b, &model.device()));
                let norm = v.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-12);
                v / norm
            })
            .collect();
        Tensor::cat(parts, 0)
    };
    let (seeds, others): (Vec<Row>, Vec<Row>) = task.train.iter().partition(|r| r.label);
    let centroid = |rows: &[Row]| -> Option<Tensor<2>> {
        (!rows.is_empty()).then(|| {
            let c = vectors(rows).mean_dim(0);
            let n = c.clone().powi_scalar(2).sum().sqrt().add_scalar(1e-12);
            c / n.unsqueeze()
        })
    };
    let Some(pos) = centroid(&seeds) else {
        return vec![0.0; task.candidates.len()];
    };
    let direction = match centroid(&others) {
        Some(neg) => pos - neg,
        None => pos,
    };
    if task.candidates.is_empty() {
        return Vec::new();
    }
    let sims = vectors(task.candidates).matmul(direction.transpose());
    sims.flatten::<1>(0, 1)
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("f32 data")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean of log-odds: equal scores stay, opposite odds meet at one half, and a saturated
    /// probability stays finite and keeps the order.
    #[test]
    fn log_odds_are_averaged() {
        let m = mean_log_odds(&[0.2, 0.8, 1.0, 0.0, 0.9], &[0.2, 0.2, 0.5, 0.5, 0.5]);
        assert!((m[0] - 0.2).abs() < 1e-6);
        assert!((m[1] - 0.5).abs() < 1e-6);
        // sqrt of the odds 0.9/0.1 = 9: 3, p = 0.75.
        assert!((m[4] - 0.75).abs() < 1e-6);
        assert!(m.iter().all(|p| p.is_finite()));
        assert!(m[2] > m[4] && m[3] < m[0]);
    }

    /// Every method's id and paper name parse back to it.
    #[test]
    fn every_method_parses_by_id_and_name() {
        for m in Method::ALL.into_iter().chain(Method::EXTRA) {
            assert_eq!(Method::parse(m.id()), Some(m));
            assert_eq!(Method::parse(&m.name().to_uppercase()), Some(m));
        }
        assert_eq!(Method::parse("nope"), None);
    }
}
