//! `lookalike mtl bench`: every multi-task model over several seeds on one data folder, MTReclib's
//! table (per task AUC and logloss on the test rows, mean ± std over seeds), a JSON for scripts and an
//! SVG chart. The data split is the same for every run; a seed changes the initialisation, the batch
//! order and dropout.

use super::train::{DataArgs, ModelArg};
use crate::{backend, charts, progress};
use anyhow::{Context, Result, bail};
use lookalike_core::mtl::{MtlModelKind, TaskScore};
use lookalike_core::mtl_train::{MtlProgress, evaluate, train};
use lookalike_core::stats::mean_std;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Models to run [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    models: Vec<ModelArg>,
    /// Runs per model (seeds 1..=N).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Seed of the validation split (the same for every run).
    #[arg(long, default_value_t = 2021)]
    split_seed: u64,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Folder for the SVG chart (AUC per model and task, ± std).
    #[arg(long)]
    svg: Option<PathBuf>,
}

/// Mean, std and the per-seed values of one metric.
#[derive(serde::Serialize)]
struct Stat {
    mean: f64,
    std: f64,
    per_seed: Vec<f64>,
}

impl Stat {
    fn of(v: Vec<f64>) -> Stat {
        let (mean, std) = mean_std(&v);
        Stat {
            mean,
            std,
            per_seed: v,
        }
    }

    fn show(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

#[derive(serde::Serialize)]
struct TaskStats {
    auc: Stat,
    logloss: Stat,
}

#[derive(serde::Serialize)]
struct ModelStats {
    ctr: TaskStats,
    ctcvr: TaskStats,
    seconds: f64,
    rows_per_second: f64,
    epochs: Vec<usize>,
}

fn task_stats(runs: &[Vec<TaskScore>], task: usize) -> TaskStats {
    TaskStats {
        auc: Stat::of(
            runs.iter()
                .map(|r| r[task].auc.unwrap_or(f64::NAN))
                .collect(),
        ),
        logloss: Stat::of(runs.iter().map(|r| r[task].logloss).collect()),
    }
}

pub fn run(a: Args) -> Result<()> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let start = Instant::now();
    let device = backend(a.data.backend)?;
    let d = a.data.load(a.split_seed)?;
    let kinds: Vec<MtlModelKind> = if a.models.is_empty() {
        MtlModelKind::ALL.to_vec()
    } else {
        a.models.iter().map(|&m| m.into()).collect()
    };
    eprintln!(
        "mtl bench: {} models × {} seeds on {} ({} train, {} validation, {} test rows)",
        kinds.len(),
        a.seeds,
        d.source.display(),
        d.train.len(),
        d.valid.len(),
        d.test.len()
    );
    let bar = progress::steps((kinds.len() as u64) * a.seeds, "runs");
    let mut table: BTreeMap<&str, ModelStats> = BTreeMap::new();
    for &kind in &kinds {
        let (config, tc) = a.data.configs(kind, &d);
        let mut runs = Vec::new();
        let (mut seconds, mut rows) = (0.0, 0.0);
        let mut epochs = Vec::new();
        for seed in 1..=a.seeds {
            bar.set_prefix(format!("{} seed {seed}", kind.name()));
            let fit = train(&config, &tc, &d.train, &d.valid, seed, &device, &mut |p| {
                if let MtlProgress::Epoch(r) = p {
                    bar.set_message(format!("epoch {}", r.epoch));
                }
            })?;
            let test = evaluate(&fit.model, &d.test, &d.field_sizes, tc.eval_batch)?;
            // A line per run, so a log shows progress where the bar is hidden (not a terminal).
            bar.suspend(|| {
                eprintln!(
                    "  {} seed {seed}: kept epoch {} of {}, test AUC CTR {} CTCVR {}, {:.1} s ({:.0} rows/s)",
                    kind.name(),
                    fit.best_epoch,
                    fit.epochs.len(),
                    super::train::auc(&test[0]),
                    test.get(1).map_or("-".into(), super::train::auc),
                    fit.seconds,
                    fit.rows_per_second
                )
            });
            runs.push(test);
            seconds += fit.seconds;
            rows += fit.rows_per_second;
            epochs.push(fit.best_epoch);
            bar.inc(1);
        }
        table.insert(
            kind.name(),
            ModelStats {
                ctr: task_stats(&runs, 0),
                ctcvr: task_stats(&runs, 1),
                seconds,
                rows_per_second: rows / a.seeds as f64,
                epochs,
            },
        );
    }
    bar.finish_and_clear();
    let total = start.elapsed().as_secs_f64();
    println!(
        "| model | CTR AUC | CTR logloss | CTCVR AUC | CTCVR logloss | best epochs | training rows/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &kind in &kinds {
        let m = &table[kind.name()];
        println!(
            "| {} | {} | {} | {} | {} | {:?} | {:.0} |",
            kind.name(),
            m.ctr.auc.show(4),
            m.ctr.logloss.show(5),
            m.ctcvr.auc.show(4),
            m.ctcvr.logloss.show(5),
            m.epochs,
            m.rows_per_second
        );
    }
    println!(
        "mean ± std over {} seeds on the test rows; bench finished in {total:.1} s",
        a.seeds
    );
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "data": d.source.display().to_string(),
            "seeds": (1..=a.seeds).collect::<Vec<_>>(),
            "rows": { "train": d.train.len(), "validation": d.valid.len(), "test": d.test.len() },
            "seconds": total,
            "models": &table,
        });
        crate::write_json(path, &v)?;
    }
    if let Some(dir) = &a.svg {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let rows: Vec<charts::MethodAuc> = kinds
            .iter()
            .map(|k| {
                let m = &table[k.name()];
                charts::MethodAuc {
                    name: k.name(),
                    values: [
                        Some((m.ctr.auc.mean, m.ctr.auc.std)),
                        Some((m.ctcvr.auc.mean, m.ctcvr.auc.std)),
                    ],
                }
            })
            .collect();
        let world = match &a.data.data {
            Some(dir) => dir
                .file_name()
                .map_or("data".into(), |n| n.to_string_lossy().to_string()),
            None => "built-in demo".into(),
        };
        charts::auc_by_method(
            &dir.join("mtl-auc-by-model.svg"),
            &format!("{world}: test AUC per model over {} seeds", a.seeds),
            "test AUC (± std over seeds)",
            ["CTR", "CTCVR"],
            &rows,
        )?;
    }
    Ok(())
}
