//! The bundled demo world (`data/demo`, made by `lookalike synth --scale demo --seed 2021 --gzip`),
//! compiled into the binary so `prepare` works anywhere without `--raw`.

use anyhow::{Context, Result};

const FILES: [(&str, &[u8]); 4] = [
    (
        "adFeature.csv.gz",
        include_bytes!("../../../data/demo/adFeature.csv.gz"),
    ),
    (
        "userFeature.data.gz",
        include_bytes!("../../../data/demo/userFeature.data.gz"),
    ),
    (
        "train.csv.gz",
        include_bytes!("../../../data/demo/train.csv.gz"),
    ),
    (
        "test1_truth.csv.gz",
        include_bytes!("../../../data/demo/test1_truth.csv.gz"),
    ),
];

/// Writes the demo world into a temporary folder (removed when the guard drops).
pub fn unpack() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    for (name, bytes) in FILES {
        std::fs::write(dir.path().join(name), bytes)
            .with_context(|| format!("cannot write {name}"))?;
    }
    Ok(dir)
}
