//! A meta-training run's checkpoint: everything [`crate::schedule::fit_resumable`] needs to continue a
//! killed run to the same result as an uninterrupted one (same seed, CPU) — the trainer's position and
//! random stream, the weights, Adam's state, the early-stopping state and the best weights so far.
//! Bytes in, bytes out; the CLI writes them atomically.

use crate::frame::{self, FrameError};
use crate::meta::TrainerState;
use crate::schedule::FitReport;

const MAGIC: &[u8; 8] = b"LKCKPT\0\0";
const VERSION: u32 = 3;
/// Version 1 had no embedding optimizer state (dense Adam only); version 2 no finished configured fit.
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
    /// Set while a second general model trains for the experts choice
    /// ([`crate::meta::MetaConfig::select_experts`]): the configured model's finished fit, whose kept
    /// weights are the checkpoint's `configured` blob, so a resume need not train it again.
    #[serde(default)]
    pub configured: Option<FitReport>,
}

/// A checkpoint: header, the weights (f32), Adam's state, the best validated weights (if any), the
/// embedding tables' Adam state under lazy updates, and the configured model's finished weights while
/// the experts choice's second model trains.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub best: Option<Vec<u8>>,
    pub embeddings: Option<Vec<u8>>,
    pub configured: Option<Vec<u8>>,
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
        let optionals = [
            self.best.as_deref(),
            self.embeddings.as_deref(),
            self.configured.as_deref(),
        ];
        let payload = 8 * 8
            + self.model.len()
            + self.optimizer.len()
            + optionals.iter().flatten().map(|b| b.len()).sum::<usize>();
        let mut out = frame::write_head(MAGIC, VERSION, &json, payload);
        for blob in [&self.model[..], &self.optimizer[..]] {
            out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            out.extend_from_slice(blob);
        }
        for optional in optionals {
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
        let configured = match version {
            1 | 2 => None,
            _ => optional("configured-model flag", "the configured model's weights")?,
        };
        Ok(Checkpoint {
            header,
            model,
            optimizer,
            best,
            embeddings,
            configured,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(configured: bool) -> Checkpoint {
        Checkpoint {
            header: CheckpointHeader {
                run: serde_json::json!({"seed": 9}),
                trainer: TrainerState {
                    iteration: 6,
                    rng: vec![7; 49],
                    plain_shuffled_at: None,
                    plain_cursor: 0,
                },
                total: 12,
                report: FitReport::default(),
                recent: vec![0.5],
                since_best: 1,
                configured: configured.then(|| FitReport {
                    iterations: 12,
                    aucs: vec![Some(0.75), None],
                    ..FitReport::default()
                }),
            },
            model: vec![1, 2, 3],
            optimizer: vec![4],
            best: Some(vec![5, 6]),
            embeddings: None,
            configured: configured.then(|| vec![8, 9, 10, 11]),
        }
    }

    /// Every blob comes back, the configured model's finished fit included; a version-2 file (no
    /// such fit) still reads.
    #[test]
    fn round_trips_and_reads_version_2() {
        for configured in [false, true] {
            let c = checkpoint(configured);
            let back = Checkpoint::from_bytes(&c.to_bytes().unwrap()).unwrap();
            assert_eq!(back.model, c.model);
            assert_eq!(back.optimizer, c.optimizer);
            assert_eq!(back.best, c.best);
            assert_eq!(back.embeddings, c.embeddings);
            assert_eq!(back.configured, c.configured);
            assert_eq!(
                back.header.configured.map(|r| (r.iterations, r.aucs)),
                c.header.configured.map(|r| (r.iterations, r.aucs))
            );
        }
        // Version 2: the same framing without the last flag.
        let mut old = checkpoint(false).to_bytes().unwrap();
        old.truncate(old.len() - 8);
        old[8..12].copy_from_slice(&2u32.to_le_bytes());
        let back = Checkpoint::from_bytes(&old).unwrap();
        assert_eq!((back.best, back.configured), (Some(vec![5, 6]), None));
        // Cut short, it names what is missing.
        let full = checkpoint(true).to_bytes().unwrap();
        let e = Checkpoint::from_bytes(&full[..full.len() - 2]).unwrap_err();
        assert!(e.to_string().contains("configured model"), "{e}");
    }
}
