//! `lookalike score-throughput`: how fast a campaign's model scores a pool, the folded model that
//! `score` runs (`lookalike_core::fold`) against the plain forward pass, side by side on the same users
//! already in memory (reading and parsing the pool are not timed), with the FLOPs a user costs each way
//! and, given this CPU's ceiling, the share of it.

use crate::score::load_campaign;
use crate::{BackendArg, backend};
use anyhow::{Result, bail};
use lookalike_core::data::{Row, UserTable};
use lookalike_core::expansion::{PoolScorer, score_blocks};
use lookalike_data::pool;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// A campaign's model record (`lookalike finetune`).
    #[arg(long)]
    model: PathBuf,
    /// The pool, as `score` reads it (a raw directory or a user file, text or Parquet).
    #[arg(long)]
    pool: PathBuf,
    /// Users taken from the head of the pool.
    #[arg(long, default_value_t = 200_000)]
    users: usize,
    /// Rounds; each times both ways, one after the other.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// This CPU's f32 ceiling in GFLOP/s, for the share of it each way reaches (`scripts/cpu-peak.c`
    /// measures it: independent FMA chains on every core).
    #[arg(long)]
    ceiling_gflops: Option<f64>,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Way {
    name: &'static str,
    /// Users per second, one figure a round.
    users_per_second: Vec<f64>,
    /// FLOPs of the model's layers a user (the same both ways).
    model_flops_per_user: f64,
    /// FLOPs of the products this way runs a user.
    executed_flops_per_user: f64,
}

#[derive(serde::Serialize)]
struct Report {
    users: usize,
    threads: usize,
    ceiling_gflops: Option<f64>,
    ways: Vec<Way>,
    /// The largest difference between the two ways' scores of a user.
    max_score_difference: f32,
}

/// Stops the pool's stream once enough users are read.
#[derive(Debug)]
struct Enough;

impl std::fmt::Display for Enough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("enough users read")
    }
}

impl std::error::Error for Enough {}

pub fn run(a: Args) -> Result<()> {
    if a.users == 0 || a.rounds == 0 {
        bail!("--users and --rounds must be at least 1");
    }
    let (header, model) = load_campaign(&a.model, &backend(a.backend)?)?;
    let ad = &header.campaign.as_ref().expect("a campaign's model").ad;

    // The head of the pool, in the pieces `score` streams it in.
    let user_path = pool::user_file(&a.pool)?;
    let mut pieces: Vec<UserTable> = Vec::new();
    let mut read = 0;
    let streamed = pool::stream_users(
        &user_path,
        &header.schema,
        &|_| true,
        &mut |_| {},
        &mut |mut t: UserTable| -> Result<()> {
            t.truncate(a.users - read);
            read += t.len();
            pieces.push(t);
            if read >= a.users {
                return Err(Enough.into());
            }
            Ok(())
        },
    );
    if let Err(e) = streamed
        && e.downcast_ref::<Enough>().is_none()
    {
        return Err(e);
    }
    println!(
        "scoring {read} users of {} with {} ({} rounds; the pool read beforehand, not timed)",
        user_path.display(),
        a.model.display(),
        a.rounds
    );

    let mut forward_rates = Vec::new();
    let mut folded_rates = Vec::new();
    let (mut forward_scores, mut folded_scores) = (Vec::new(), Vec::new());
    let mut executed = 0.0;
    for _ in 0..a.rounds {
        let start = Instant::now();
        forward_scores.clear();
        for t in &pieces {
            let rows: Vec<Row> = (0..t.len() as u32)
                .map(|user| Row { user, label: false })
                .collect();
            forward_scores.extend(score_blocks(&model, t, ad, &rows)?);
        }
        forward_rates.push(read as f64 / start.elapsed().as_secs_f64());

        // Folding is part of the time: `score` folds once per campaign.
        let start = Instant::now();
        let scorer = PoolScorer::new(&model, ad);
        folded_scores.clear();
        for t in &pieces {
            folded_scores.extend(scorer.score(t)?);
        }
        folded_rates.push(read as f64 / start.elapsed().as_secs_f64());
        executed = scorer.executed_flops_per_user();
    }
    let max_score_difference = forward_scores
        .iter()
        .zip(&folded_scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);

    let flops = model.flops_per_user();
    let report = Report {
        users: read,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ceiling_gflops: a.ceiling_gflops,
        ways: vec![
            Way {
                name: "forward pass",
                users_per_second: forward_rates,
                model_flops_per_user: flops,
                executed_flops_per_user: flops,
            },
            Way {
                name: "folded (what `score` runs)",
                users_per_second: folded_rates,
                model_flops_per_user: flops,
                executed_flops_per_user: executed,
            },
        ],
        max_score_difference,
    };
    print_report(&report);
    if let Some(path) = &a.json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}

fn print_report(r: &Report) {
    let share = |gflops: f64| match r.ceiling_gflops {
        Some(c) => format!(" ({:.0} % of {c:.0})", 100.0 * gflops / c),
        None => String::new(),
    };
    println!();
    println!(
        "| way | users/s, each round | MFLOP a user: model / run | GFLOP/s at the best round: model / run |"
    );
    println!("|---|---|---|---|");
    for w in &r.ways {
        let best = w.users_per_second.iter().copied().fold(0.0, f64::max);
        let rates: Vec<String> = w
            .users_per_second
            .iter()
            .map(|u| format!("{u:.0}"))
            .collect();
        let (model, run) = (
            best * w.model_flops_per_user / 1e9,
            best * w.executed_flops_per_user / 1e9,
        );
        println!(
            "| {} | {} | {:.2} / {:.2} | {:.0}{} / {:.0}{} |",
            w.name,
            rates.join(", "),
            w.model_flops_per_user / 1e6,
            w.executed_flops_per_user / 1e6,
            model,
            share(model),
            run,
            share(run),
        );
    }
    println!();
    println!(
        "The model's FLOPs count its layers' multiply-adds as two FLOPs each, however they are computed; \
         the run's count the products each way runs (folded: not the sums of folded rows). Largest \
         difference between the two ways' scores of a user: {:.1e}.",
        r.max_score_difference
    );
    if r.ceiling_gflops.is_none() {
        println!(
            "Give --ceiling-gflops (scripts/cpu-peak.c measures it) for the share of this CPU's."
        );
    }
}
