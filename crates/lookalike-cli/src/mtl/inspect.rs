//! `lookalike mtl inspect`: what a multi-task data folder holds, as the models will see it (the
//! validation split, field sizes over train ∪ test, the numerical features' training statistics).

use anyhow::Result;
use lookalike_data::mtl::Numerical;
use lookalike_data::mtl_synth::load_or_demo;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with train.csv and test.csv (or .csv.gz) [default: the built-in demo].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Share of the training rows held out for validation (early stopping).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    if !(0.0..1.0).contains(&a.val_fraction) {
        anyhow::bail!("--val-fraction must be in [0, 1)");
    }
    let start = Instant::now();
    let d = load_or_demo(
        a.data.as_deref(),
        a.val_fraction,
        a.seed,
        Numerical::Standardise,
    )?;
    let rows = d.train.len() + d.valid.len() + d.test.len();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} {rows} rows of {} in {seconds:.1} s ({:.0} rows/s)",
        if a.data.is_some() {
            "read"
        } else {
            "generated"
        },
        d.source.display(),
        rows as f64 / seconds.max(1e-9)
    );
    for (name, t) in [
        ("train", &d.train),
        ("validation", &d.valid),
        ("test", &d.test),
    ] {
        println!("{}", super::describe(name, t));
    }
    let sizes: Vec<String> = d
        .train
        .categorical
        .iter()
        .zip(&d.field_sizes)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
    println!("field sizes (train ∪ test): {}", sizes.join(", "));
    if let Some(stats) = &d.standardised {
        let wide = stats
            .iter()
            .zip(&d.train.numerical)
            .max_by(|a, b| a.0.1.total_cmp(&b.0.1));
        if let Some(((m, s), n)) = wide {
            println!(
                "numerical features standardised with the training rows' statistics (widest: {n}, mean {m:.4}, deviation {s:.4})"
            );
        }
    }
    Ok(())
}
