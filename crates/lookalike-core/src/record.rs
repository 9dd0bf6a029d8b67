//! The general-model record: one self-describing file holding the model config, the schema with its
//! vocabularies, training metadata and the weights (burnpack, f32 or f16).
//!
//! Layout: `LKALIKE\0` magic, u32 format version, u64 header length, JSON header, u64 weights length,
//! burnpack bytes, and where the general model takes the similar campaigns' prior, u64 length and the
//! library ([`crate::similar::Library::to_bytes`]; a build without it reads the record and ignores
//! it). Bytes in, bytes out: the CLI writes files, the web app reads a fetched buffer.

use crate::frame::{self, FrameError};
use crate::meta::MetaConfig;
use crate::model::{Init, MetaHeac, MetaHeacConfig};
use crate::schema::Schema;
use burn::module::{Module, ModuleMapper, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"LKALIKE\0";
/// 2: the wide part sits on the critic mixture's logit with a learned scale (1: on every critic's logit;
/// version 1 records without a wide part still load).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("unknown precision {s:?} (expected f32 or f16)")),
        }
    }
}

/// How the general model was trained.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainingInfo {
    /// `None` for a model that was never meta-trained.
    pub meta: Option<MetaConfig>,
    pub seed: u64,
    pub iterations: usize,
    pub train_campaigns: usize,
    pub train_rows: usize,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Mean query loss over the last iterations.
    pub final_loss: Option<f32>,
    pub backend: String,
    /// Where the data came from (e.g. the prepared file's name and fingerprint).
    pub data: String,
    pub created_by: String,
    /// The online recipe its validation campaigns chose (`MetaConfig::online_select`); the online
    /// stage applies it unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<crate::schedule::OnlineChoice>,
    /// The number of experts its validation campaigns chose (`MetaConfig::select_experts`); the
    /// record's model has that many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<crate::schedule::ExpertsChoice>,
    /// Iterations of the refit on every training campaign, validation ones included
    /// (`MetaConfig::val_refit`), where the record's weights come from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit: Option<usize>,
    /// The validation campaigns' comparison with and without the similar campaigns' prior, and
    /// whether the online stage takes it (`MetaConfig::similar`; where it does, the record carries
    /// the library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similar: Option<crate::schedule::SimilarChoice>,
    /// The recipe the fit's validation chose without that prior, where `online` was chosen again with
    /// it (`MetaConfig::online_with_prior`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_without_prior: Option<crate::schedule::OnlineChoice>,
}

impl TrainingInfo {
    /// The online recipe to apply: the chosen one (the best single run where `averaging` is false:
    /// see [`crate::schedule::OnlineChoice::applied`]), or the configuration as given.
    pub fn online_recipe(&self, averaging: bool) -> crate::finetune::OnlineRecipe {
        self.online_recipe_with(averaging, true)
    }

    /// [`Self::online_recipe`] for an online stage that starts from the similar campaigns' prior
    /// where the record carries one (`prior`) or not: without it, the recipe chosen without it where
    /// `online` was chosen again with it ([`Self::online_without_prior`]).
    pub fn online_recipe_with(
        &self,
        averaging: bool,
        prior: bool,
    ) -> crate::finetune::OnlineRecipe {
        let choice = match prior {
            true => self.online.as_ref(),
            false => self.online_without_prior.as_ref().or(self.online.as_ref()),
        };
        choice.map(|c| c.applied(averaging)).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordHeader {
    pub model: MetaHeacConfig,
    pub schema: Schema,
    pub precision: Precision,
    pub training: TrainingInfo,
    pub parameters: usize,
    /// Set on one campaign's fine-tuned model (`lookalike finetune`): what scoring needs besides the
    /// weights. `None` on a general model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignInfo>,
    /// Every training campaign's LR, where the online stage folds the prior of the campaigns most
    /// like the new one into the wide part ([`crate::similar::Library::fold`]); stored after the
    /// weights, not in the JSON.
    #[serde(skip)]
    pub library: Option<std::sync::Arc<crate::similar::Library>>,
}

impl RecordHeader {
    /// The library the online stage folds a prior from, where there is one and `wanted`
    /// ([`crate::finetune::FineTuneConfig::similar`]).
    pub fn prior_library(&self, wanted: bool) -> Option<&crate::similar::Library> {
        self.library.as_deref().filter(|_| wanted)
    }
}

/// The campaign a fine-tuned model was made for, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CampaignInfo {
    /// The campaign's ad-field ids (the schema's vocabularies; 0 = unknown).
    pub ad: Vec<u32>,
    /// Where the ad features came from (`--like-aid AID` or the `--ad` pairs).
    pub ad_source: String,
    /// Distinct seed ids listed, matched in the pool, used for training, held out.
    pub seeds_listed: usize,
    pub seeds_matched: usize,
    pub seeds_trained: usize,
    pub seeds_held_out: usize,
    /// Non-seeds sampled from the pool for fine-tuning.
    pub negatives: usize,
    /// Held-out seeds against random non-seeds after fine-tuning, where seeds were held out.
    pub held_out_auc: Option<f64>,
    /// Fine-tuning steps run, and the L2 strength of the wide part's fit (`None`: not fitted).
    pub steps: usize,
    pub wide_c: Option<f64>,
    /// Whether those steps (without the wide fit) were averaged with a run of the wide fit alone
    /// ([`crate::finetune::FineTuneConfig::soup`]; records made before it: false).
    #[serde(default)]
    pub soup: bool,
    pub seed: u64,
    /// The pool the non-seeds were drawn from.
    pub pool: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a look-alike model record (bad magic bytes)")]
    BadMagic,
    #[error(
        "record format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version(u32),
    #[error(
        "record format version 1 has a wide part on every critic's logit, which this build no longer reads; retrain it with `lookalike pretrain`"
    )]
    OldWide,
    #[error("record is truncated: {0}")]
    Truncated(&'static str),
    #[error("record header is not valid: {0}")]
    Header(#[from] serde_json::Error),
    #[error("record weights do not fit the model described by its header: {0}")]
    Weights(String),
    #[error("record's similar campaigns: {0}")]
    Library(String),
}

struct CastTo(DType);

impl ModuleMapper for CastTo {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        p.map(|t| t.cast(dtype))
    }
}

/// A model's weights alone (any module: MetaHeac, the multi-task models), as burnpack bytes (f32
/// round-trips bit-exactly; the parameter ids are kept, which Adam's saved state is keyed by).
pub fn weights_to_bytes<M: Module>(
    model: &M,
    precision: Precision,
) -> Result<Vec<u8>, RecordError> {
    let mut model = model.valid();
    if precision == Precision::F16 {
        model = model.map(&mut CastTo(DType::F16));
    }
    Ok(model
        .into_record()
        .into_bytes()
        .map_err(|e| RecordError::Weights(format!("{e:?}")))?
        .to_vec())
}

/// Loads weights from [`weights_to_bytes`] into `model` (same architecture), on `model`'s device; the
/// parameters take the saved ids.
pub fn load_weights<M: Module>(model: M, weights: &[u8]) -> Result<M, RecordError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| RecordError::Weights(format!("{e:?}")))?
        .cast_to_module_dtype();
    model
        .try_load_record(record)
        .map_err(|e| RecordError::Weights(format!("{e:?}")))
}

/// Serialises a model with its header; `header.precision` selects the stored dtype.
pub fn to_bytes(model: &MetaHeac, header: &RecordHeader) -> Result<Vec<u8>, RecordError> {
    let weights = weights_to_bytes(model, header.precision)?;
    let json = serde_json::to_vec(header)?;
    let library = header.library.as_ref().map(|l| l.to_bytes());
    let extra = library.as_ref().map_or(0, |l| l.len() + 8);
    let mut out = frame::write_head(MAGIC, FORMAT_VERSION, &json, weights.len() + 8 + extra);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(&weights);
    if let Some(l) = library {
        out.extend_from_slice(&(l.len() as u64).to_le_bytes());
        out.extend_from_slice(&l);
    }
    Ok(out)
}

/// Reads the header and, where there is one, the similar campaigns' library (no weights are decoded;
/// the library keeps each campaign's non-zero weights, or all of them where that is smaller).
pub fn read_header(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), RecordError> {
    let (version, json, mut rest) = frame::read_head(bytes, MAGIC, 1..=FORMAT_VERSION)?;
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    fill_older_header(&mut value);
    let mut header: RecordHeader = serde_json::from_value(value)?;
    if version < 2 && header.model.wide {
        return Err(RecordError::OldWide);
    }
    header.schema.rebuild_indices();
    // The schema decides the slot layout (records written before the config carried it have none).
    header.model.multi_lens = header.schema.multi_lens();
    let n = frame::u64_at(&mut rest, "weights length")?;
    let weights = frame::take(&mut rest, n, "weights")?;
    if !rest.is_empty() {
        let n = frame::u64_at(&mut rest, "similar campaigns' length")?;
        let bytes = frame::take(&mut rest, n, "similar campaigns")?;
        let onehot = crate::lr::OneHot::new(&header.model.tables, &header.model.multi_lens);
        let library =
            crate::similar::Library::from_bytes(bytes, &onehot).map_err(RecordError::Library)?;
        header.library = Some(std::sync::Arc::new(library));
    }
    Ok((header, weights))
}

/// Gives a header written before some config fields existed the values its model was trained with:
/// no wide part, N(0, 1) embeddings, no layout (the schema gives it), and the reference schedule
/// (`MetaConfig::reference`). Fields present are left alone.
fn fill_older_header(header: &mut serde_json::Value) {
    fn fill(target: Option<&mut serde_json::Value>, defaults: serde_json::Value) {
        if let (Some(serde_json::Value::Object(t)), serde_json::Value::Object(d)) =
            (target, defaults)
        {
            for (k, v) in d {
                t.entry(k).or_insert(v);
            }
        }
    }
    fill(
        header.get_mut("model"),
        serde_json::json!({ "multi_lens": [], "embed_init_std": 1.0, "wide": false }),
    );
    let meta = header.get_mut("training").and_then(|t| t.get_mut("meta"));
    if let Ok(reference) = serde_json::to_value(MetaConfig::reference()) {
        fill(meta, reference);
    }
}

impl From<FrameError> for RecordError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadMagic => RecordError::BadMagic,
            FrameError::Version(v) => RecordError::Version(v),
            FrameError::Truncated(what) => RecordError::Truncated(what),
        }
    }
}

/// Decodes a record onto a device (f16 weights are cast back to f32).
pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<(RecordHeader, MetaHeac), RecordError> {
    let (header, weights) = read_header(bytes)?;
    let model = load_weights(header.model.init(Init::Zeros, device), weights)?;
    Ok((header, model))
}

/// A record's model, or with `fresh = Some(seed)` fresh weights of the architecture it describes:
/// the one-stage baseline that shows what pre-training is worth.
pub fn from_bytes_or_fresh(
    bytes: &[u8],
    fresh: Option<u64>,
    device: &Device,
) -> Result<(RecordHeader, MetaHeac), RecordError> {
    match fresh {
        None => from_bytes(bytes, device),
        Some(seed) => {
            let (header, _) = read_header(bytes)?;
            let model = header.model.init(Init::Seeded(seed), device);
            Ok((header, model))
        }
    }
}

/// Number of scalar parameters.
pub fn parameter_count<M: Module>(model: &M) -> usize {
    model.num_params()
}
