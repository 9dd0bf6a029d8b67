//! `lookalike export-pool`: the prepared users and campaigns in the web app's compact form.

use crate::load_prepared;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (`lookalike prepare`).
    #[arg(long)]
    data: PathBuf,
    /// The record the pool is for: its vocabularies must be the dataset's.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let (data, model, out) = (a.data.as_path(), a.model.as_path(), a.out.as_path());
    let p = load_prepared(data)?;
    let bytes =
        std::fs::read(model).with_context(|| format!("{}: cannot read", model.display()))?;
    let (header, _) = lookalike_core::record::read_header(&bytes)
        .with_context(|| format!("{}", model.display()))?;
    let source = data
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let pool = lookalike_core::pool::Pool::new(&p.schema, p.users, p.campaigns, &source);
    pool.check_schema(&header.schema).with_context(|| {
        format!(
            "{} and {} do not belong together",
            data.display(),
            model.display()
        )
    })?;
    let encoded = pool.to_bytes();
    lookalike_data::atomic::write_atomic(out, |w| w.write_all(&encoded))?;
    println!(
        "wrote {}: {} users, {} campaigns, {:.2} MB",
        out.display(),
        pool.header.users,
        pool.campaigns.len(),
        encoded.len() as f64 / 1e6
    );
    Ok(())
}
