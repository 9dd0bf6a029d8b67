//! `lookalike throughput`: meta-training speed and peak memory of the embedding tables' Adam step
//! (dense, the reference's, against lazy) and of spreading a meta-batch's tasks over the cores, side
//! by side on one data set. Each configuration runs as a child `lookalike pretrain` (same seed, same
//! iterations, no validation, no checkpoints), so each has a peak memory of its own.

use crate::BackendArg;
use crate::pretrain::MetaArg;
use anyhow::{Context, Result, bail};
use lookalike_core::record;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args)]
pub struct Args {
    /// Prepared dataset (`lookalike prepare`).
    #[arg(long)]
    data: PathBuf,
    /// Meta-training iterations per configuration.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Meta-gradient of every configuration [default: pretrain's, first-order].
    #[arg(long, value_enum)]
    meta: Option<MetaArg>,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One configuration: `pretrain`'s flags for it.
struct Config {
    name: &'static str,
    embedding_update: &'static str,
    threads: usize,
}

const CONFIGS: [Config; 4] = [
    Config {
        name: "dense Adam, 1 core (the reference's optimizer)",
        embedding_update: "dense",
        threads: 1,
    },
    Config {
        name: "dense Adam, tasks over all cores",
        embedding_update: "dense",
        threads: 0,
    },
    Config {
        name: "lazy Adam, 1 core",
        embedding_update: "lazy",
        threads: 1,
    },
    Config {
        name: "lazy Adam, tasks over all cores (default)",
        embedding_update: "lazy",
        threads: 0,
    },
];

#[derive(serde::Serialize)]
struct Run {
    name: String,
    embedding_update: String,
    threads: usize,
    iterations: usize,
    seconds: f64,
    rows_per_second: f64,
    /// Peak resident memory of the whole `pretrain` process (data, model, optimizer state, batches).
    peak_rss_mb: Option<f64>,
    final_loss: Option<f32>,
}

pub fn run(a: Args) -> Result<()> {
    if a.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if !a.data.is_file() {
        bail!("{}: no such prepared dataset", a.data.display());
    }
    let exe = std::env::current_exe().context("finding the lookalike executable")?;
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "meta-training ({}) {} iterations of {} per configuration ({} cores, backend {}):",
        a.meta.map_or("first-order".into(), |m| format!("{m:?}")),
        a.iterations,
        a.data.display(),
        cores,
        a.backend.name()
    );
    let mut runs = Vec::new();
    for (i, c) in CONFIGS.iter().enumerate() {
        let out = dir.path().join(format!("{i}.rec"));
        let log = dir.path().join(format!("{i}.log"));
        let peak = pretrain(&exe, &a, c, &out, &log)?;
        let bytes = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
        let (header, _) =
            record::read_header(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
        let t = header.training;
        let r = Run {
            name: c.name.into(),
            embedding_update: c.embedding_update.into(),
            threads: if c.threads == 0 { cores } else { c.threads },
            iterations: t.iterations,
            seconds: t.seconds,
            rows_per_second: t.rows_per_second,
            peak_rss_mb: peak,
            final_loss: t.final_loss,
        };
        println!(
            "  {:<49} {:>8.0} rows/s  {:>6.1} s  peak {}",
            r.name,
            r.rows_per_second,
            r.seconds,
            r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0} MB"))
        );
        runs.push(r);
    }
    let base = runs[0].rows_per_second;
    println!();
    println!("| configuration | rows/s | × the first | seconds | peak memory | final loss |");
    println!("|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {:.0} | {:.2} | {:.1} | {} | {} |",
            r.name,
            r.rows_per_second,
            r.rows_per_second / base.max(1e-9),
            r.seconds,
            r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0} MB")),
            r.final_loss.map_or("-".into(), |l| format!("{l:.4}"))
        );
    }
    if let Some(path) = &a.json {
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "data": a.data.display().to_string(),
            "meta": a.meta.map_or("first-order".into(), |m| format!("{m:?}")),
            "iterations": a.iterations,
            "cores": cores,
            "runs": runs,
        }))?;
        lookalike_data::atomic::write_atomic(path, |w| w.write_all(&json))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs one configuration's `pretrain` to `out`; its peak memory in MB where the platform tells.
fn pretrain(exe: &Path, a: &Args, c: &Config, out: &Path, log: &Path) -> Result<Option<f64>> {
    let mut cmd = Command::new(exe);
    cmd.arg("pretrain")
        .arg("--data")
        .arg(&a.data)
        .arg("--out")
        .arg(out)
        .args(["--max-iterations", &a.iterations.to_string()])
        .args(["--val-fraction", "0"])
        .args(["--checkpoint-every", "1000000"])
        .args(["--embedding-update", c.embedding_update])
        .args(["--threads", &c.threads.to_string()])
        .args(["--seed", &a.seed.to_string()])
        .args(["--backend", a.backend.name()])
        .args(
            a.meta
                .map(|m| {
                    use clap::ValueEnum;
                    let name = m.to_possible_value().expect("no skipped variants");
                    ["--meta".to_string(), name.get_name().to_string()]
                })
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    if c.threads == 1 {
        // One core in all: the products' and element-wise kernels' own threads too.
        cmd.env("RAYON_NUM_THREADS", "1");
    }
    let child = cmd.spawn().context("starting `lookalike pretrain`")?;
    let (ok, peak) = wait(child)?;
    if !ok {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        bail!(
            "`pretrain` ({}) failed: {}",
            c.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(peak)
}

/// Waits for `child`: whether it succeeded, and its peak resident memory (MB) from the kernel's
/// accounting of that process alone.
#[cfg(unix)]
fn wait(child: std::process::Child) -> Result<(bool, Option<f64>)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes both out-parameters for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!(
            "waiting for `pretrain`: {}",
            std::io::Error::last_os_error()
        );
    }
    // Linux reports kilobytes, macOS bytes.
    let unit = if cfg!(target_os = "macos") {
        1.0
    } else {
        1024.0
    };
    let peak = usage.ru_maxrss as f64 * unit / 1e6;
    Ok((
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        Some(peak),
    ))
}

#[cfg(not(unix))]
fn wait(mut child: std::process::Child) -> Result<(bool, Option<f64>)> {
    Ok((child.wait()?.success(), None))
}
