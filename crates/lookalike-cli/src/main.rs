//! `lookalike`: meta-train a MetaHeac general model on past campaigns (offline stage), evaluate it the
//! paper's way, and expand a new campaign's seed list (online stage).

mod bench;
mod demo;
mod eval;
mod expand;
mod pretrain;
mod progress;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lookalike_core::backend::BackendKind;
use lookalike_core::burn::tensor::Device;
use lookalike_data::prepare::{ColdCount, PrepareConfig, Prepared};
use lookalike_data::synth::{Scale, Story, SynthConfig};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "lookalike",
    version,
    about = "Look-alike audience expansion with MetaHeac (KDD 2021) on burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum ScaleArg {
    Tiny,
    Demo,
    Paper,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum StoryArg {
    Taste,
    Tokens,
    Skew,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic world in the Tencent raw layout.
    Synth {
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
        /// Write NAME.gz files (every reader accepts them).
        #[arg(long)]
        gzip: bool,
    },
    /// Read a raw directory into one prepared binary dataset (vocabularies, users, campaigns, split).
    Prepare {
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
        #[arg(long, default_value_t = 0.5)]
        train_fraction: f64,
        #[arg(long, default_value_t = 2021)]
        seed: u64,
        /// Single-valued user fields, comma-separated (default: the reference's 7).
        #[arg(long, value_delimiter = ',')]
        user_single: Option<Vec<String>>,
        /// Multi-valued user fields as name:maxlen, comma-separated (default: the reference's 7).
        #[arg(long, value_delimiter = ',')]
        user_multi: Option<Vec<String>>,
        /// Ad fields, comma-separated (default: the reference's 6).
        #[arg(long, value_delimiter = ',')]
        ad_fields: Option<Vec<String>>,
    },
    /// Meta-train the general model (offline stage) and export a record.
    Pretrain(pretrain::Args),
    /// Fine-tune on each test campaign's seeds, score its candidates, report AUC, P@5%, R@5% per group.
    Eval(eval::Args),
    /// Compare MetaHeac with the paper's baselines and ablations over several seeds (Tables 2 and 4).
    Bench(bench::Args),
    /// Expand a seed list: fine-tune on seeds plus sampled non-seeds, score the pool, write the top users.
    Expand(expand::Args),
    /// Write the candidate pool and campaigns of a prepared dataset in the web app's compact form.
    ExportPool {
        /// Prepared dataset (`lookalike prepare`).
        #[arg(long)]
        data: PathBuf,
        /// The record the pool is for: its vocabularies must be the dataset's.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Describe a model record.
    Inspect {
        record: PathBuf,
        /// Print the header as JSON (vocabularies left out).
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The inference device of a `--backend` name.
pub fn backend(name: &str) -> Result<Device> {
    let kind: BackendKind = name.parse().map_err(anyhow::Error::msg)?;
    kind.device().map_err(anyhow::Error::msg)
}

pub fn load_prepared(path: &Path) -> Result<Prepared> {
    Ok(Prepared::load(path)?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Synth {
            out,
            scale,
            story,
            seed,
            gzip,
        } => {
            let scale = match scale {
                ScaleArg::Tiny => Scale::Tiny,
                ScaleArg::Demo => Scale::Demo,
                ScaleArg::Paper => Scale::Paper,
            };
            let mut config = SynthConfig::new(scale, seed);
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
        Command::Prepare {
            raw,
            out,
            cold_threshold,
            cold_count_both_stages,
            train_fraction,
            seed,
            user_single,
            user_multi,
            ad_fields,
        } => {
            let mut config = PrepareConfig {
                train_fraction,
                cold_threshold,
                cold_count: if cold_count_both_stages {
                    ColdCount::BothStages
                } else {
                    ColdCount::Stage1
                },
                seed,
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
            let count = |r| p.campaigns.iter().filter(|c| c.role == r).count();
            use lookalike_core::data::Role;
            println!(
                "campaigns: {} train, {} cold (≤ {} seeds), {} hot; rows: {} stage 1, {} stage 2",
                count(Role::Train),
                count(Role::Cold),
                cold_threshold,
                count(Role::Hot),
                p.info.stage1_rows,
                p.info.stage2_rows
            );
            for f in p
                .schema
                .user_single
                .iter()
                .chain(&p.schema.user_multi)
                .chain(&p.schema.ad)
            {
                if f.vocab.is_empty() {
                    eprintln!(
                        "warning: field `{}` has no values in this data (all ids unknown)",
                        f.name
                    );
                }
            }
            println!(
                "wrote {} ({:.1} MB) in {:.1} s",
                out.display(),
                std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
                t.elapsed().as_secs_f64()
            );
            if count(Role::Train) == 0 || count(Role::Cold) + count(Role::Hot) == 0 {
                bail!(
                    "the split left no training or no test campaigns; add campaigns or change --train-fraction"
                );
            }
            Ok(())
        }
        Command::Pretrain(a) => pretrain::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Expand(a) => expand::run(a),
        Command::Inspect { record, json } => inspect(&record, json),
        Command::ExportPool { data, model, out } => export_pool(&data, &model, &out),
    }
}

fn export_pool(data: &Path, model: &Path, out: &Path) -> Result<()> {
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
    lookalike_data::prepare::write_atomic(out, |w| w.write_all(&encoded))?;
    println!(
        "wrote {}: {} users, {} campaigns, {:.2} MB",
        out.display(),
        pool.header.users,
        pool.campaigns.len(),
        encoded.len() as f64 / 1e6
    );
    Ok(())
}

fn inspect(path: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (h, weights) = lookalike_core::record::read_header(&bytes)
        .with_context(|| format!("{}", path.display()))?;
    if json {
        let mut v = serde_json::to_value(&h)?;
        for group in ["user_single", "user_multi", "ad"] {
            if let Some(fields) = v["schema"][group].as_array_mut() {
                for f in fields {
                    let n = f["vocab"]["tokens"].as_array().map_or(0, |t| t.len());
                    f["vocab"] = serde_json::json!({ "size": n });
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let m = &h.model;
    println!("{}: MetaHeac general model", path.display());
    println!(
        "  file {:.2} MB, weights {:.2} MB ({:?}), {} parameters",
        bytes.len() as f64 / 1e6,
        weights.len() as f64 / 1e6,
        h.precision,
        h.parameters
    );
    println!(
        "  embed_dim {}, experts {} × MLP {:?}, critics {}, gate hidden {}, critic combine {:?}, gate context {:?}",
        m.embed_dim,
        m.num_experts,
        m.expert_dims,
        m.num_critics,
        m.gate_hidden,
        m.critic_combine,
        m.gate_context
    );
    println!("  fields (name, vocabulary, max length):");
    for (kind, fields) in [
        ("user", &h.schema.user_single),
        ("user multi", &h.schema.user_multi),
        ("ad", &h.schema.ad),
    ] {
        let list: Vec<String> = fields
            .iter()
            .map(|f| {
                format!(
                    "{} {}{}",
                    f.name,
                    f.vocab.len(),
                    if f.max_len > 1 {
                        format!("×{}", f.max_len)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        println!("    {kind:<10} {}", list.join(", "));
    }
    let t = &h.training;
    match &t.meta {
        Some(meta) => println!(
            "  trained: meta {:?}, {} iterations on {} campaigns ({} rows), {:.1} s, {:.0} rows/s on {}, final loss {}",
            meta.meta_grad,
            t.iterations,
            t.train_campaigns,
            t.train_rows,
            t.seconds,
            t.rows_per_second,
            t.backend,
            t.final_loss.map_or("-".into(), |l| format!("{l:.4}"))
        ),
        None => println!("  not trained"),
    }
    println!("  seed {}, data {}, {}", t.seed, t.data, t.created_by);
    Ok(())
}

/// Reads a record onto a training (autodiff) device.
pub fn load_record(
    path: &Path,
    device: &Device,
) -> Result<(
    lookalike_core::record::RecordHeader,
    lookalike_core::model::MetaHeac,
)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    lookalike_core::record::from_bytes(&bytes, &device.clone().autodiff())
        .with_context(|| format!("{}", path.display()))
}

/// Which schedules and hyper-parameters a command runs with.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The product's defaults: offline training until validation AUC stops improving, online
    /// fine-tuning until the held-out loss stops improving.
    Product,
    /// The official code's: one offline epoch, two online epochs, no validation.
    Reference,
}

impl Protocol {
    /// Model, offline and online configurations, every default from its config struct.
    pub fn configs(
        self,
        schema: &lookalike_core::schema::Schema,
    ) -> (
        lookalike_core::model::MetaHeacConfig,
        lookalike_core::meta::MetaConfig,
        lookalike_core::finetune::FineTuneConfig,
    ) {
        use lookalike_core::{finetune::FineTuneConfig, meta::MetaConfig, model::MetaHeacConfig};
        let model = MetaHeacConfig::for_schema(schema);
        match self {
            Protocol::Product => (model, MetaConfig::new(), FineTuneConfig::new()),
            Protocol::Reference => (
                model.with_wide(false),
                MetaConfig::reference(),
                FineTuneConfig::reference(),
            ),
        }
    }
}

/// Fine-tuning flags shared by `eval` and `expand`.
#[derive(clap::Args, Clone)]
pub struct FineTuneArgs {
    /// Online schedule: the product's (stop when the held-out loss stops improving) or the reference's
    /// (2 epochs).
    #[arg(long, value_enum, default_value_t = Protocol::Product)]
    protocol: Protocol,
    /// Most fine-tuning epochs [default: 30; reference 2].
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// Fine-tuning Adam learning rate [default: 1e-3, reference].
    #[arg(long)]
    finetune_lr: Option<f64>,
    /// Fine-tuning batch size [default: 512].
    #[arg(long)]
    finetune_batch: Option<usize>,
}

impl FineTuneArgs {
    pub fn config(&self) -> lookalike_core::finetune::FineTuneConfig {
        let mut c = match self.protocol {
            Protocol::Product => lookalike_core::finetune::FineTuneConfig::new(),
            Protocol::Reference => lookalike_core::finetune::FineTuneConfig::reference(),
        };
        c.epochs = self.finetune_epochs.unwrap_or(c.epochs);
        c.lr = self.finetune_lr.unwrap_or(c.lr);
        c.batch = self.finetune_batch.unwrap_or(c.batch).max(1);
        c
    }
}
