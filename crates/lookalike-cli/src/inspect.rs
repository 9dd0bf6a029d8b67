//! `lookalike inspect`: describe a model record.

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    record: PathBuf,
    /// Print the header as JSON (vocabularies left out).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (path, json) = (a.record.as_path(), a.json);
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
    println!(
        "{}: MetaHeac {}",
        path.display(),
        if h.campaign.is_some() {
            "campaign model (fine-tuned from a general model)"
        } else {
            "general model"
        }
    );
    println!(
        "  file {:.2} MB, weights {:.2} MB ({:?}), {} parameters",
        bytes.len() as f64 / 1e6,
        weights.len() as f64 / 1e6,
        h.precision,
        h.parameters
    );
    println!(
        "  embed_dim {}, experts {} × MLP {:?}, critics {}, gate hidden {}, critic combine {:?}, gate context {:?}, wide part {}",
        m.embed_dim,
        m.num_experts,
        m.expert_dims,
        m.num_critics,
        m.gate_hidden,
        m.critic_combine,
        m.gate_context,
        if m.wide { "yes" } else { "no" }
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
    match (&t.online, &t.online_without_prior) {
        (Some(o), Some(w)) => println!(
            "  online recipe: {} (chosen on validation with the similar campaigns' prior, on a fresh split: {}; without it: {}, {})",
            o.recipe.name(),
            o.tried_summary(),
            w.recipe.name(),
            w.tried_summary()
        ),
        (Some(o), None) => println!(
            "  online recipe: {} (chosen on validation: {})",
            o.recipe.name(),
            o.tried_summary()
        ),
        _ => {}
    }
    if let Some(e) = &t.experts {
        println!(
            "  experts: {} (chosen on validation: {})",
            e.experts,
            e.tried_summary()
        );
    }
    if let Some(c) = &t.similar {
        println!(
            "  similar campaigns' prior: {} (validation mean AUC {})",
            if c.used { "taken" } else { "not taken" },
            c.summary()
        );
    }
    if let Some(l) = &h.library {
        println!(
            "  library: the LR fits of {} training campaigns over {} columns; the online stage averages those most like the new campaign ({} of them)",
            l.len(),
            l.dim,
            l.k_label()
        );
    }
    if let Some(n) = t.refit {
        println!(
            "  refit: {n} iterations on every training campaign, the validation ones included"
        );
    }
    if let Some(c) = &h.campaign {
        println!(
            "  campaign: ad {} ({}); seeds {} listed, {} matched, {} trained, {} held out; {} sampled non-seeds from {}",
            c.ad.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            c.ad_source,
            c.seeds_listed,
            c.seeds_matched,
            c.seeds_trained,
            c.seeds_held_out,
            c.negatives,
            c.pool
        );
        let wide = match (c.soup, c.wide_c) {
            (true, _) => "not fitted, averaged with a run of the wide fit alone".to_string(),
            (false, Some(c)) => format!("fitted at C = {c}"),
            (false, None) => "not fitted".into(),
        };
        println!(
            "  fine-tuned: {} steps, wide part {wide}, seed {}; held-out seeds AUC {}",
            c.steps,
            c.seed,
            c.held_out_auc.map_or("-".into(), |a| format!("{a:.4}"))
        );
    }
    Ok(())
}
