//! `lookalike synth`: a synthetic world in the Tencent raw layout.

use anyhow::Result;
use lookalike_data::synth::{Scale, Story, SynthConfig};
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum ScaleArg {
    Tiny,
    Demo,
    Paper,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum StoryArg {
    Taste,
    Tokens,
    Skew,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = ScaleArg::Demo)]
    scale: ScaleArg,
    /// What makes users convert: taste affinity (the demo), a few trigger tokens per campaign, or
    /// campaign-specific demographic skews and idiosyncrasies.
    #[arg(long, value_enum, default_value_t = StoryArg::Taste)]
    story: StoryArg,
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Number of campaigns [default: the scale's: tiny 12, demo 32, paper 170]. More campaigns give a
    /// development world a validation split large enough to choose settings with.
    #[arg(long)]
    campaigns: Option<usize>,
    /// Write NAME.gz files (every reader accepts them).
    #[arg(long)]
    gzip: bool,
}

pub fn run(a: Args) -> Result<()> {
    let Args {
        out,
        scale,
        story,
        seed,
        campaigns,
        gzip,
    } = a;
    let scale = match scale {
        ScaleArg::Tiny => Scale::Tiny,
        ScaleArg::Demo => Scale::Demo,
        ScaleArg::Paper => Scale::Paper,
    };
    let mut config = SynthConfig::new(scale, seed);
    if let Some(n) = campaigns {
        if n < 2 {
            anyhow::bail!("--campaigns must be at least 2 (one to train on, one to test)");
        }
        config.campaigns = n;
    }
    config.story = match story {
        StoryArg::Taste => Story::Taste,
        StoryArg::Tokens => Story::Tokens,
        StoryArg::Skew => Story::Skew,
    };
    let t = std::time::Instant::now();
    let s = lookalike_data::synth::synth(&out, &config, gzip)?;
    println!(
        "wrote {}: {} users, {} campaigns, {} seeds, {} stage-1 rows, {} stage-2 rows ({:.1} s)",
        out.display(),
        s.users,
        s.campaigns,
        s.seeds,
        s.stage1_rows,
        s.stage2_rows,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
