//! A meta-training run's checkpoint: everything [`crate::schedule::fit_resumable`] needs to continue a
//! killed run to the same result as an uninterrupted one (same seed, CPU) — the trainer's position and
//! random stream, the weights, Adam's state, the early-stopping state and the best weights so far.
//! Bytes in, bytes out; the CLI writes them atomically.

use crate::frame::{self, FrameError};
use crate::meta::TrainerState;
use crate::schedule::FitReport;

const MAGIC: &[u8; 8] = b"LKCKPT\0\0";
const VERSION: u32 = 2;
/// Version 1 had no embedding optimizer state (dense Adam only).
const OLDEST: u32 = 1;

/// What a checkpoint holds beside its three weight blobs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointHeader {
    /// What the run was started with (the caller's choice: data, configs, seed, limits). A resume
    /// with anything else is refused.
    pub run: serde_json::Value,
    pub trainer: TrainerState,
    /// The iterations the run was to take.
    pub total: usize,
    pub report: FitReport,
    /// The losses the final mean is taken over.
    pub recent: Vec<f32>,
    pub since_best: usize,
}

/// A checkpoint: header, the weights (f32), Adam's state, the best validated weights (if any), and
/// the embedding tables' Adam state under lazy updates.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub best: Option<Vec<u8>>,
    pub embeddings: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint (bad magic bytes)")]
    BadMagic,
    #[error("checkpoint format version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
    #[error("checkpoint is truncated: {0}")]
    Truncated(&'static str),
    #[error("checkpoint header is not valid: {0}")]
    Header(#[from] serde_json::Error),
}

impl From<FrameError> for CheckpointError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadMagic => CheckpointError::BadMagic,
            FrameError::Version(v) => CheckpointError::Version(v),
            FrameError::Truncated(what) => CheckpointError::Truncated(what),
        }
    }
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let json = serde_json::to_vec(&self.header)?;
        let (best, embeddings) = (self.best.as_deref(), self.embeddings.as_deref());
        let payload = 8 * 6
            + self.model.len()
            + self.optimizer.len()
            + best.map_or(0, <[u8]>::len)
            + embeddings.map_or(0, <[u8]>::len);
        let mut out = frame::write_head(MAGIC, VERSION, &json, payload);
        for blob in [&self.model[..], &self.optimizer[..]] {
            out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            out.extend_from_slice(blob);
        }
        for optional in [best, embeddings] {
            out.extend_from_slice(&u64::from(optional.is_some()).to_le_bytes());
            if let Some(b) = optional {
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let (version, json, mut rest) = frame::read_head(bytes, MAGIC, OLDEST..=VERSION)?;
        let header: CheckpointHeader = serde_json::from_slice(json)?;
        fn blob(rest: &mut &[u8], what: &'static str) -> Result<Vec<u8>, FrameError> {
            let n = frame::u64_at(rest, what)?;
            Ok(frame::take(rest, n, what)?.to_vec())
        }
        let model = blob(&mut rest, "weights")?;
        let optimizer = blob(&mut rest, "optimizer state")?;
        let mut optional = |flag: &'static str, what: &'static str| -> Result<_, FrameError> {
            Ok(match frame::u64_at(&mut rest, flag)? {
                0 => None,
                _ => Some(blob(&mut rest, what)?),
            })
        };
        let best = optional("best-weights flag", "best weights")?;
        let embeddings = match version {
            1 => None,
            _ => optional("embedding-state flag", "embedding tables' Adam state")?,
        };
        Ok(Checkpoint {
            header,
            model,
            optimizer,
            best,
            embeddings,
        })
    }
}
