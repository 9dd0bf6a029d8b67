//! `lookalike prepare`: raw layout → one prepared binary dataset.

use crate::{demo, progress};
use anyhow::{Context, Result, bail};
use lookalike_data::prepare::{ColdCount, Fold, PrepareConfig, UserFields};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Raw directory (adFeature.csv, userFeature.data, train.csv, test1_truth.csv, each optionally .gz).
    /// Without it, the bundled demo world is used.
    #[arg(long)]
    raw: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// T: test campaigns with ≤ T seeds form the cold group, the others the hot group.
    #[arg(long, default_value_t = 2000)]
    cold_threshold: usize,
    /// Count stage-1 and stage-2 positives for the cold/hot grouping, as the reference code does.
    #[arg(long)]
    cold_count_both_stages: bool,
    /// Fraction of campaigns used for meta-training (reference code 0.5, paper 0.6).
    #[arg(long, default_value_t = 0.5, conflicts_with = "folds")]
    train_fraction: f64,
    /// Seeds the campaign split (which campaigns train, which test).
    #[arg(long, default_value_t = 2021)]
    seed: u64,
    /// Cross-fitting over campaigns: cut the seeded order of campaigns into N folds; `--fold K`
    /// tests the K-th (0-based) and trains on the rest. Preparing (and benching) every fold of one
    /// seed tests each campaign once: `--folds 2` doubles the test campaigns of the default split,
    /// whose test half is `--fold 1`.
    #[arg(long, requires = "fold", value_parser = clap::value_parser!(u64).range(2..))]
    folds: Option<u64>,
    /// Which fold tests (0 to --folds − 1).
    #[arg(long, requires = "folds")]
    fold: Option<usize>,
    /// Single-valued user fields, comma-separated (default: the reference's 7).
    #[arg(long, value_delimiter = ',')]
    user_single: Option<Vec<String>>,
    /// Multi-valued user fields as name:maxlen, comma-separated (default: the reference's 7).
    #[arg(long, value_delimiter = ',')]
    user_multi: Option<Vec<String>>,
    /// Ad fields, comma-separated (default: the reference's 6).
    #[arg(long, value_delimiter = ',')]
    ad_fields: Option<Vec<String>>,
    /// Which user fields to read [default: all, or listed when --user-single or --user-multi is
    /// given].
    #[arg(long, value_enum)]
    fields: Option<FieldsArg>,
    /// Under `--fields all`, the most values kept of one multi-valued field of one user (1..=255;
    /// the first ones in file order).
    #[arg(long, default_value_t = PrepareConfig::default().max_tokens)]
    max_tokens: usize,
}

/// `--fields`: which user fields `prepare` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FieldsArg {
    /// The listed fields (the reference's, or --user-single / --user-multi), then every other
    /// field the user file holds (id-like ones aside), each multi-valued field long enough for its
    /// users' values up to --max-tokens.
    All,
    /// The listed fields only, at their listed lengths (the reference code's behaviour).
    Listed,
}

impl From<FieldsArg> for UserFields {
    fn from(f: FieldsArg) -> Self {
        match f {
            FieldsArg::All => UserFields::All,
            FieldsArg::Listed => UserFields::Listed,
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let Args {
        raw,
        out,
        cold_threshold,
        cold_count_both_stages,
        train_fraction,
        seed,
        folds,
        fold,
        user_single,
        user_multi,
        ad_fields,
        fields,
        max_tokens,
    } = a;
    // Naming the fields means those fields, unless --fields all says to add the rest.
    let user_fields = fields.map_or(
        if user_single.is_some() || user_multi.is_some() {
            UserFields::Listed
        } else {
            UserFields::All
        },
        UserFields::from,
    );
    let mut config = PrepareConfig {
        train_fraction,
        cold_threshold,
        cold_count: if cold_count_both_stages {
            ColdCount::BothStages
        } else {
            ColdCount::Stage1
        },
        seed,
        user_fields,
        max_tokens,
        fold: folds.zip(fold).map(|(n, k)| Fold { k, n: n as usize }),
        ..Default::default()
    };
    if let Some(f) = user_single {
        config.fields.user_single = f;
    }
    if let Some(f) = user_multi {
        config.fields.user_multi = f
            .iter()
            .map(|s| {
                let (n, l) = s
                    .split_once(':')
                    .with_context(|| format!("--user-multi {s:?}: expected name:maxlen"))?;
                Ok((
                    n.to_string(),
                    l.parse()
                        .with_context(|| format!("--user-multi {s:?}: bad max length"))?,
                ))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(f) = ad_fields {
        config.fields.ad = f;
    }
    let (dir, _guard) = match raw {
        Some(dir) => (dir, None),
        None => {
            let tmp = demo::unpack()?;
            eprintln!("no --raw given: using the bundled demo world");
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let t = std::time::Instant::now();
    let bar = progress::bytes("reading");
    let p = lookalike_data::prepare::prepare(&dir, &config, &|stage, bytes| {
        bar.set_message(stage.to_string());
        bar.set_position(bytes);
    })?;
    bar.finish_and_clear();
    let count = |r| p.campaigns.iter().filter(|c| c.role == r).count();
    use lookalike_core::data::Role;
    // Before writing: a split that leaves nothing to train or test on is no prepared file.
    if count(Role::Train) == 0 || count(Role::Cold) + count(Role::Hot) == 0 {
        bail!(
            "the split left no training or no test campaigns; add campaigns or change --train-fraction \
             (or --folds)"
        );
    }
    p.save(&out)?;
    let u = &p.info.users;
    println!(
        "users: {} lines, {:.1} MB in {:.2} s ({:.0} lines/s), {} kept, {} row users missing from the user file",
        u.lines,
        u.bytes as f64 / 1e6,
        u.seconds,
        u.lines_per_second(),
        u.kept,
        p.info.missing_users
    );
    if let Some(f) = config.fold {
        println!("fold {} of {} tests (0-based; seed {seed})", f.k, f.n);
    }
    println!(
        "campaigns: {} train, {} cold (≤ {} seeds), {} hot; rows: {} stage 1, {} stage 2",
        count(Role::Train),
        count(Role::Cold),
        cold_threshold,
        count(Role::Hot),
        p.info.stage1_rows,
        p.info.stage2_rows
    );
    if let Some(added) = &p.info.fields_added {
        for line in added.report(max_tokens) {
            match line {
                Ok(l) => println!("{l}"),
                Err(w) => eprintln!("warning: {w}"),
            }
        }
    }
    // One line for all of them: data with a few of the reference's fields would otherwise open
    // with a screenful of warnings.
    let empty: Vec<&str> = p
        .schema
        .user_single
        .iter()
        .chain(&p.schema.user_multi)
        .chain(&p.schema.ad)
        .filter(|f| f.vocab.is_empty())
        .map(|f| f.name.as_str())
        .collect();
    if !empty.is_empty() {
        eprintln!(
            "warning: {} field(s) have no values in this data (all their ids are unknown): {}; \
             --user-single, --user-multi and --ad-fields can name only the fields present",
            empty.len(),
            empty.join(", ")
        );
    }
    println!(
        "wrote {} ({:.1} MB) in {:.1} s",
        out.display(),
        std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
