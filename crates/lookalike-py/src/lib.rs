//! `import lookalike`: the online stage from Python, for engines that spread work over machines
//! (Apache Spark's `DataFrame.mapInArrow` first). Load a record, fine-tune a campaign on its seeds
//! (the same body as `lookalike finetune`), score Arrow record batches (the same scoring as
//! `lookalike score`). Batches cross the boundary as Arrow IPC streams, so any Arrow library can feed
//! them; `python/lookalike/__init__.py` wraps that for pyarrow and Spark.

use arrow_array::{Float32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use lookalike_core::backend::BackendKind;
use lookalike_core::burn::tensor::Device;
use lookalike_core::expansion::{PoolScorer, score_into, score_table};
use lookalike_core::finetune::FineTuneConfig;
use lookalike_core::model::MetaHeac;
use lookalike_core::online::{OnlineConfig, Scored, TopK, audience_size};
use lookalike_core::record::{self, RecordHeader};
use lookalike_core::seeds::SeedList;
use lookalike_data::campaign::{self, Ad, Request};
use lookalike_data::columnar::encode_batch;
use pyo3::exceptions::{PyIOError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn cpu() -> Result<Device, String> {
    BackendKind::Flex.device()
}

/// A model record: a general model (`lookalike pretrain`) or a campaign's (`finetune`).
#[pyclass(module = "lookalike._native", frozen)]
struct Model {
    bytes: Vec<u8>,
    header: RecordHeader,
    /// Decoded on the CPU for scoring.
    model: MetaHeac,
    /// A campaign's model folded for scoring, made at its first batch and kept for the others.
    scorer: OnceLock<PoolScorer>,
}

impl Model {
    fn new(bytes: Vec<u8>) -> PyResult<Model> {
        let (header, model) =
            record::from_bytes(&bytes, &cpu().map_err(value_error)?).map_err(value_error)?;
        Ok(Model {
            bytes,
            header,
            model,
            scorer: OnceLock::new(),
        })
    }
}

#[pymethods]
impl Model {
    /// Reads a record file.
    #[staticmethod]
    fn load(path: &str) -> PyResult<Model> {
        let bytes = std::fs::read(path).map_err(|e| PyIOError::new_err(format!("{path}: {e}")))?;
        Model::new(bytes).map_err(|e| value_error(format!("{path}: {e}")))
    }

    /// A record from its bytes (as `to_bytes` gives them, e.g. shipped to Spark's executors).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Model> {
        Model::new(data.to_vec())
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    fn save(&self, path: &str) -> PyResult<()> {
        lookalike_data::atomic::write_atomic(Path::new(path), |w| w.write_all(&self.bytes))
            .map_err(|e| PyIOError::new_err(e.to_string()))
    }

    /// Whether this is a campaign's fine-tuned model (it can score) rather than a general one.
    #[getter]
    fn is_campaign(&self) -> bool {
        self.header.campaign.is_some()
    }

    /// The record's header as JSON (vocabularies left out).
    fn info(&self) -> PyResult<String> {
        let mut v = serde_json::to_value(&self.header).map_err(value_error)?;
        for group in ["user_single", "user_multi", "ad"] {
            if let Some(fields) = v["schema"][group].as_array_mut() {
                for f in fields {
                    let n = f["vocab"]["tokens"].as_array().map_or(0, |t| t.len());
                    f["vocab"] = serde_json::json!({ "size": n });
                }
            }
        }
        Ok(v.to_string())
    }

    /// Fine-tunes this general model for a new campaign, as `lookalike finetune` does: its seeds
    /// (user ids) and non-seeds sampled from `pool` (a raw directory or a user file, text or
    /// Parquet), the ad given `like_aid` (an aid of the pool folder's adFeature.csv) or `ad`
    /// ({field: value}). Starts from the similar campaigns' prior where the record carries it
    /// (`similar=False`: without). Returns the campaign's model.
    #[pyo3(signature = (pool, seeds, like_aid=None, ad=None, seed=2021, similar=true))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one per option.
    fn finetune(
        &self,
        py: Python<'_>,
        pool: &str,
        seeds: Vec<u64>,
        like_aid: Option<String>,
        ad: Option<HashMap<String, String>>,
        seed: u64,
        similar: bool,
    ) -> PyResult<Model> {
        let ad = match (like_aid, ad) {
            (Some(aid), None) => Ad::LikeAid(aid),
            (None, Some(pairs)) => {
                Ad::Pairs(pairs.iter().map(|(k, v)| format!("{k}={v}")).collect())
            }
            _ => return Err(value_error("give exactly one of like_aid and ad")),
        };
        let list = SeedList::from_ids(seeds);
        let bytes = py.detach(|| -> Result<Vec<u8>, String> {
            let (header, general) =
                record::from_bytes(&self.bytes, &cpu()?.autodiff()).map_err(|e| e.to_string())?;
            let request = Request {
                pool: Path::new(pool),
                seeds: &list,
                seeds_name: "the seed list",
                ad: &ad,
                online: OnlineConfig::new(),
                // The record's online recipe, and non-seeds sampled from the pool, as in
                // `lookalike finetune`.
                finetune: header
                    .training
                    .online_recipe_with(false, similar)
                    .apply(FineTuneConfig::new().sampled_negatives())
                    .with_similar(similar),
                seed,
            };
            let tuned = campaign::tune(header, general, &request, &mut |_| {})
                .map_err(|e| e.to_string())?;
            record::to_bytes(&tuned.model, &tuned.header).map_err(|e| e.to_string())
        });
        Model::new(bytes.map_err(value_error)?)
    }

    /// Scores the users of an Arrow IPC stream (a `uid` column and the user fields, named as in
    /// `userFeature.data`) with this campaign's model; returns an IPC stream of (`uid` Int64,
    /// `score` Float32), in the input's order.
    fn score_ipc<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let scorer = self.scorer()?;
        let out = py.detach(|| -> Result<Vec<u8>, String> {
            let mut scored = Vec::new();
            for_each_table(&self.header, data, &|_| true, &mut |users| {
                scored.extend(score_table(scorer, &users).map_err(|e| e.to_string())?);
                Ok(())
            })?;
            scored_ipc(&scored)
        });
        Ok(PyBytes::new(py, &out.map_err(value_error)?))
    }
}

impl Model {
    /// The campaign's ad ids, or an error for a general model.
    fn campaign_ad(&self) -> PyResult<&[u32]> {
        match &self.header.campaign {
            Some(c) => Ok(&c.ad),
            None => Err(value_error(
                "a general model, not a campaign's: fine-tune it first (Model.finetune)",
            )),
        }
    }

    /// The campaign's model folded for scoring (made once).
    fn scorer(&self) -> PyResult<&PoolScorer> {
        let ad = self.campaign_ad()?;
        Ok(self.scorer.get_or_init(|| PoolScorer::new(&self.model, ad)))
    }
}

/// Each record batch of an IPC stream of users, encoded with the record's vocabularies (the users
/// `keep` accepts).
fn for_each_table(
    header: &RecordHeader,
    data: &[u8],
    keep: &(dyn Fn(u64) -> bool + Sync),
    each: &mut dyn FnMut(lookalike_core::data::UserTable) -> Result<(), String>,
) -> Result<(), String> {
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(data), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let source = Path::new("<arrow batch>");
    let mut first_row = 1;
    for batch in reader {
        let batch = batch.map_err(|e| format!("reading the stream: {e}"))?;
        let users = encode_batch(source, &header.schema, &batch, first_row, keep)
            .map_err(|e| e.to_string())?;
        first_row += batch.num_rows();
        each(users)?;
    }
    Ok(())
}

/// `(uid, score)` rows as an IPC stream: `uid` Int64 (Spark has no unsigned type), `score` Float32.
fn scored_ipc(rows: &[Scored]) -> Result<Vec<u8>, String> {
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("uid", DataType::Int64, false),
        Field::new("score", DataType::Float32, false),
    ]));
    let uids = rows
        .iter()
        .map(|r| i64::try_from(r.uid).map_err(|_| format!("uid {} does not fit an Int64", r.uid)))
        .collect::<Result<Vec<i64>, String>>()?;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(uids)),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.score))),
        ],
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// The best `k` users seen, in memory bounded by `k`: the same heap and order as `lookalike score`
/// and `merge` (higher score first, on a tie the lower uid), so per-partition audiences merge to
/// exactly the whole pool's.
#[pyclass(module = "lookalike._native")]
struct Audience {
    top: TopK,
    exclude: HashSet<u64>,
    scored: usize,
}

#[pymethods]
impl Audience {
    /// `k` users at most; users in `exclude` (e.g. the seeds) are never kept.
    #[new]
    #[pyo3(signature = (k, exclude=None))]
    fn new(k: usize, exclude: Option<Vec<u64>>) -> Audience {
        Audience {
            top: TopK::new(k),
            exclude: exclude.unwrap_or_default().into_iter().collect(),
            scored: 0,
        }
    }

    /// Scores the users of an Arrow IPC stream with a campaign's model, as `lookalike score` does
    /// (same batches, same finite check), and keeps the best; returns how many were scored.
    fn score_ipc(&mut self, py: Python<'_>, model: &Model, data: &[u8]) -> PyResult<usize> {
        let scorer = model.scorer()?;
        let Audience {
            top,
            exclude,
            scored,
        } = self;
        let n = py.detach(|| -> Result<usize, String> {
            let mut n = 0;
            for_each_table(
                &model.header,
                data,
                &|uid| !exclude.contains(&uid),
                &mut |users| {
                    n += score_into(scorer, &users, top).map_err(|e| e.to_string())?;
                    Ok(())
                },
            )?;
            Ok(n)
        });
        let n = n.map_err(value_error)?;
        *scored += n;
        Ok(n)
    }

    /// Offers already scored users (an IPC stream of `uid`, `score`, e.g. other partitions' audiences).
    fn merge_ipc(&mut self, data: &[u8]) -> PyResult<()> {
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(data), None)
            .map_err(|e| value_error(format!("not an Arrow IPC stream: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| value_error(format!("reading the stream: {e}")))?;
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| value_error(format!("no `{name}` column")))
            };
            let uids = column("uid")?
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| value_error("`uid` must be Int64"))?;
            let scores = column("score")?
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| value_error("`score` must be Float32"))?;
            for (uid, score) in uids.iter().zip(scores.iter()) {
                let (Some(uid), Some(score)) = (uid, score) else {
                    return Err(value_error("a null `uid` or `score`"));
                };
                let uid = u64::try_from(uid)
                    .map_err(|_| value_error(format!("uid {uid} is negative")))?;
                if !score.is_finite() {
                    return Err(value_error(format!(
                        "uid {uid}: score {score} is not finite"
                    )));
                }
                if !self.exclude.contains(&uid) {
                    self.top.offer(Scored { uid, score });
                }
            }
        }
        Ok(())
    }

    /// The users kept, best first, as an IPC stream of (`uid` Int64, `score` Float32).
    fn to_ipc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let out = scored_ipc(&self.top.sorted()).map_err(value_error)?;
        Ok(PyBytes::new(py, &out))
    }

    /// How many users were scored into it (merged ones not counted).
    #[getter]
    fn scored(&self) -> usize {
        self.scored
    }

    fn __len__(&self) -> usize {
        self.top.len()
    }
}

/// Audience size for `percent` % of `candidates` users, as `lookalike score --audience-pct`.
#[pyfunction]
fn audience_size_for(candidates: usize, percent: f64) -> PyResult<usize> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(value_error("the percentage must be in (0, 100]"));
    }
    Ok(audience_size(candidates, percent))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<Audience>()?;
    m.add("SCORE_BATCH", lookalike_core::expansion::SCORE_BATCH)?;
    m.add_function(wrap_pyfunction!(audience_size_for, m)?)?;
    Ok(())
}
