//! `lookalike mtl`: the multi-task mode (MTReclib's setting: CTR and CTCVR on AliExpress-format data).
//! One module per subcommand, as at the top level.

mod bench;
mod convert;
mod inspect;
mod synth;
mod train;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Write synthetic data in MTReclib's processed AliExpress layout (train.csv, test.csv).
    Synth(synth::Args),
    /// Convert a country's original Tianchi files into that layout, as MTReclib's preprocessing does.
    Convert(convert::Args),
    /// Read a data folder as training will: rows and rates per split, field sizes, statistics.
    Inspect(inspect::Args),
    /// Train one model (SingleTask, Shared-Bottom, OMoE, MMoE, PLE, AITM, MetaHeac) with early stopping
    /// on a validation split.
    Train(train::Args),
    /// Every model over several seeds: MTReclib's table (per task AUC and logloss), JSON and SVG.
    Bench(bench::Args),
}

pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Synth(a) => synth::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Train(a) => train::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// One line on a data set's rows and rates.
pub fn describe(name: &str, t: &lookalike_data::mtl::MtlTable) -> String {
    let (ctr, ctcvr) = t.rates();
    format!(
        "{name}: {} rows, {} categorical and {} numerical columns, CTR {:.2} %, CTCVR {:.3} %",
        t.len(),
        t.categorical.len(),
        t.numerical.len(),
        ctr * 100.0,
        ctcvr * 100.0
    )
}
