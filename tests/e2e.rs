//! End to end through the `lookalike` binary: synth → prepare → pretrain → eval → expand → inspect,
//! on a tiny synthetic world, plus the errors a user meets first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn lookalike(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(args)
        .output()
        .expect("run lookalike")
}

fn ok(args: &[&str]) -> String {
    let out = lookalike(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "lookalike {args:?} failed:\n{text}");
    text
}

fn fails(args: &[&str]) -> String {
    let out = lookalike(args);
    assert!(!out.status.success(), "lookalike {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Where a command that must fail would have written.
fn bad_out_path(w: &World) -> PathBuf {
    w.path("must-not-exist.out")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `expand` with the flags every call here shares, then `extra`.
fn expand_args<'a>(
    rec: &'a Path,
    raw: &'a Path,
    seeds: &'a Path,
    aid: &'a str,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "expand",
        "--model",
        p(rec),
        "--raw",
        p(raw),
        "--seeds",
        p(seeds),
        "--like-aid",
        aid,
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    args
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        ok(&[
            "synth",
            "--out",
            p(&root.join("raw")),
            "--scale",
            "tiny",
            "--seed",
            "5",
        ]);
        ok(&[
            "prepare",
            "--raw",
            p(&root.join("raw")),
            "--out",
            p(&root.join("data.lkd")),
            "--cold-threshold",
            "30",
        ]);
        World { _dir: dir, root }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// The weights section of a record (the header holds timings, which differ between runs).
fn weights(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    lookalike_core::record::read_header(&bytes)
        .unwrap()
        .1
        .to_vec()
}

#[test]
fn pipeline_end_to_end() {
    let w = World::new();
    let (data, rec) = (w.path("data.lkd"), w.path("model.rec"));
    let out = ok(&[
        "pretrain",
        "--data",
        p(&data),
        "--out",
        p(&rec),
        "--seed",
        "3",
    ]);
    assert!(out.contains("rows/s"), "{out}");
    // Same seed, same weights (CPU).
    let again = w.path("again.rec");
    ok(&[
        "pretrain",
        "--data",
        p(&data),
        "--out",
        p(&again),
        "--seed",
        "3",
    ]);
    assert!(
        weights(&rec) == weights(&again),
        "same --seed must give the same record"
    );

    // The web app's pool: written for the record's vocabularies, refused for others.
    let pool = w.path("demo.pool");
    let out = ok(&[
        "export-pool",
        "--data",
        p(&data),
        "--model",
        p(&rec),
        "--out",
        p(&pool),
    ]);
    assert!(out.contains("users"), "{out}");
    let decoded = lookalike_core::pool::Pool::from_bytes(&std::fs::read(&pool).unwrap()).unwrap();
    let (header, _) = lookalike_core::record::read_header(&std::fs::read(&rec).unwrap()).unwrap();
    decoded.check_schema(&header.schema).unwrap();
    assert!(
        decoded
            .campaigns
            .iter()
            .any(|c| c.stage1.iter().any(|r| r.label))
    );
    let other = w.path("other.lkd");
    ok(&[
        "prepare",
        "--raw",
        p(&w.path("raw")),
        "--out",
        p(&other),
        "--user-single",
        "age,gender",
    ]);
    let wrong = w.path("wrong.pool");
    let e = fails(&[
        "export-pool",
        "--data",
        p(&other),
        "--model",
        p(&rec),
        "--out",
        p(&wrong),
    ]);
    assert!(e.contains("do not belong together"), "{e}");
    assert!(!wrong.exists());
    let half = w.path("half.rec");
    ok(&[
        "pretrain",
        "--data",
        p(&data),
        "--out",
        p(&half),
        "--seed",
        "3",
        "--precision",
        "f16",
    ]);
    assert!(std::fs::metadata(&half).unwrap().len() < std::fs::metadata(&rec).unwrap().len());
    let info = ok(&["inspect", p(&rec)]);
    // The validation campaigns chose between 8 experts and 1 (the default); the record's model has
    // the number chosen, and `inspect` says so.
    let (h, _) = lookalike_core::record::read_header(&std::fs::read(&rec).unwrap()).unwrap();
    let experts = h
        .training
        .experts
        .clone()
        .expect("a chosen number of experts");
    assert_eq!(
        experts.tried.iter().map(|t| t.0).collect::<Vec<_>>(),
        [8, 1]
    );
    assert_eq!(h.model.num_experts, experts.experts);
    assert!(
        info.contains(&format!("{} × MLP", experts.experts))
            && info.contains(&format!(
                "experts: {} (chosen on validation",
                experts.experts
            ))
            && info.contains("FirstOrder"),
        "{info}"
    );

    // Eval: markdown table and JSON with both groups.
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--data", p(&data), "--model", p(&rec)];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let json = w.path("eval.json");
    let table = eval(&["--json", p(&json)]);
    assert!(
        table.contains("| cold |") && table.contains("| hot |"),
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // The line on what the campaigns in the means hold names as many as the table counts.
    assert!(
        table.contains(&format!(
            "Test campaigns in the means: cold {} campaigns: ",
            v["groups"]["cold"]["campaigns"]
        )),
        "{table}"
    );
    for g in ["cold", "hot"] {
        let group = &v["groups"][g];
        for key in [
            "pooled_auc",
            "mean_auc",
            "precision",
            "recall",
            "campaigns",
            "per_campaign",
        ] {
            assert!(!group[key].is_null(), "groups.{g}.{key} missing: {group}");
        }
        let auc = group["mean_auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc));
    }
    eval(&["--no-pretrain"]);

    // Ablations and the other meta-gradients train and load.
    for extra in [
        &["--meta", "none"][..],
        &["--meta", "second-order", "--max-iterations", "2"],
        &[
            "--experts",
            "1",
            "--critics",
            "1",
            "--critic-combine",
            "mean",
            "--max-iterations",
            "2",
        ],
        &["--online-select", "false", "--max-iterations", "2"],
    ] {
        let r = w.path("ablation.rec");
        let mut args = vec!["pretrain", "--data", p(&data), "--out", p(&r)];
        args.extend_from_slice(extra);
        ok(&args);
        ok(&["inspect", p(&r)]);
        let (h, _) = lookalike_core::record::read_header(&std::fs::read(&r).unwrap()).unwrap();
        assert_eq!(
            h.training.online.is_none(),
            extra.contains(&"false"),
            "a recipe is chosen unless --online-select false: {extra:?}"
        );
        // Experts given on the command line stay as given.
        assert_eq!(
            h.training.experts.is_none(),
            extra.contains(&"--experts"),
            "{extra:?}"
        );
    }

    // The validation campaigns chose the online recipe (the default); the record carries it,
    // `inspect` shows it and `eval` applies it; with `--soup true` it averages two runs instead.
    let (h, _) = lookalike_core::record::read_header(&std::fs::read(&rec).unwrap()).unwrap();
    let online = h.training.online.expect("a chosen recipe in the record");
    assert_eq!(
        online.tried.len(),
        lookalike_core::finetune::OnlineRecipe::ALL.len()
    );
    assert!(
        info.contains(&format!("online recipe: {}", online.recipe.name())),
        "{info}"
    );
    use lookalike_core::finetune::OnlineRecipe;
    let averaged = online.recipe == OnlineRecipe::Averaged;
    assert_eq!(
        table.contains("online recipe chosen by the model's validation campaigns"),
        online.recipe != OnlineRecipe::AsConfigured,
        "{table}"
    );
    assert_eq!(
        table.contains("online rule: the average of two runs"),
        averaged,
        "{table}"
    );
    // `--soup false` keeps to one run: the best single run validation tried.
    let single = eval(&["--soup", "false"]);
    assert!(!single.contains("online rule: the average"), "{single}");
    let soup = eval(&["--soup", "true"]);
    assert!(
        soup.contains("online rule: the average of two runs")
            && soup.contains("online recipe chosen by") == averaged,
        "{soup}"
    );

    // The validation campaigns chose whether the online stage starts from the similar campaigns'
    // prior (the default); the record carries their LR fits exactly where they took it, and
    // `inspect` and `eval` say so.
    let similar = h
        .training
        .similar
        .clone()
        .expect("a similar-campaigns choice");
    assert_eq!(h.library.is_some(), similar.used);
    let taken = if similar.used { "taken" } else { "not taken" };
    assert!(
        info.contains(&format!("similar campaigns' prior: {taken}")),
        "{info}"
    );
    assert_eq!(
        table.contains("online stage from the prior"),
        similar.used,
        "{table}"
    );
    // `--similar always` takes it whatever validation measured; `eval` folds it in before every
    // fine-tune, and `--similar false` fine-tunes without it, as the model without a library does.
    // With `--online-with-prior true` the recipe is chosen again with the prior and the record
    // carries both choices: the online stage applies the one for how it runs.
    let always = w.path("always.rec");
    let out = ok(&[
        "pretrain",
        "--data",
        p(&data),
        "--out",
        p(&always),
        "--seed",
        "3",
        "--similar",
        "always",
        "--online-with-prior",
        "true",
    ]);
    assert!(out.contains("similar campaigns' prior: taken"), "{out}");
    assert!(
        out.contains("online recipe with the similar campaigns' prior:"),
        "{out}"
    );
    let (ha, _) = lookalike_core::record::read_header(&std::fs::read(&always).unwrap()).unwrap();
    let library = ha
        .library
        .expect("--similar always: the record carries the library");
    assert!(library.k > 0 && !library.is_empty());
    assert!(
        std::fs::metadata(&always).unwrap().len() > std::fs::metadata(&rec).unwrap().len()
            || similar.used
    );
    let eval_of = |model: &Path, extra: &[&str]| {
        let mut args = vec!["eval", "--data", p(&data), "--model", p(model)];
        args.extend_from_slice(extra);
        let out = ok(&args);
        let rows: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("| cold") || l.starts_with("| hot"))
            .map(String::from)
            .collect();
        (out, rows)
    };
    let (with, with_rows) = eval_of(&always, &[]);
    let (without, without_rows) = eval_of(&always, &["--similar", "false"]);
    assert!(with.contains("online stage from the prior"), "{with}");
    assert!(
        !without.contains("online stage from the prior"),
        "{without}"
    );
    assert_ne!(
        with_rows, without_rows,
        "the prior changes the fine-tuned models"
    );
    let info_always = ok(&["inspect", p(&always)]);
    assert!(
        info_always.contains("library: the LR fits of"),
        "{info_always}"
    );
    assert!(
        info_always
            .contains("chosen on validation with the similar campaigns' prior, on a fresh split"),
        "{info_always}"
    );
    let chosen = |o: &Option<lookalike_core::schedule::OnlineChoice>| {
        o.as_ref().expect("both recipes in the record").recipe
    };
    let (with_prior, without_prior) = (
        chosen(&ha.training.online),
        chosen(&ha.training.online_without_prior),
    );
    for (out, recipe) in [(&with, with_prior), (&without, without_prior)] {
        let said = match recipe {
            OnlineRecipe::AsConfigured => None,
            OnlineRecipe::Averaged => Some("online rule: the average of two runs".to_string()),
            r => Some(format!(
                "online recipe chosen by the model's validation campaigns: {}",
                r.name()
            )),
        };
        if let Some(said) = said {
            assert!(out.contains(&said), "{recipe:?}: {out}");
        }
    }

    // Expand: seeds = the stage-1 seeds of one campaign.
    let raw = w.path("raw");
    let train = std::fs::read_to_string(raw.join("train.csv")).unwrap();
    let aid = train
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let seeds: Vec<&str> = train
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(&format!("{aid},")) && l.ends_with(",1"))
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    let seed_file = w.path("seeds.csv");
    std::fs::write(&seed_file, format!("uid\r\n{}\r\n", seeds.join("\r\n"))).unwrap();
    let audience = w.path("audience.csv");
    let out = ok(&expand_args(
        &rec,
        &raw,
        &seed_file,
        &aid,
        &audience,
        &["--top", "50"],
    ));
    assert!(out.contains("match rate 100.0 %"), "{out}");
    let csv = std::fs::read_to_string(&audience).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("uid,score"));
    let rows: Vec<(String, f64)> = lines
        .map(|l| {
            let (u, s) = l.split_once(',').unwrap();
            (u.to_string(), s.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 50);
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "sorted by score");
    assert!(
        rows.iter().all(|(u, _)| !seeds.contains(&u.as_str())),
        "seeds are excluded"
    );

    // The same in two steps, the second split over 3 shards: the campaign's model as a record, then
    // the pool ranked with it; the merged parts are the whole pool's list, byte for byte.
    let campaign = w.path("campaign.rec");
    // `finetune` of `model` for this campaign, writing `out`.
    let finetune = |model: &Path, out: &Path| -> Vec<String> {
        [
            "finetune",
            "--model",
            p(model),
            "--pool",
            p(&raw),
            "--seeds",
            p(&seed_file),
            "--like-aid",
            &aid,
            "--out",
            p(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let out = ok(&strs(&finetune(&rec, &campaign)));
    assert!(out.contains("match rate 100.0 %"), "{out}");
    // From a record with the library, the campaign's model holds the prior in its weights; its
    // record needs no library.
    let from_always = w.path("campaign-always.rec");
    ok(&strs(&finetune(&always, &from_always)));
    let (hc, _) =
        lookalike_core::record::read_header(&std::fs::read(&from_always).unwrap()).unwrap();
    assert!(hc.campaign.is_some() && hc.library.is_none());
    let score = |extra: &[&str], out: &Path| {
        let args = [
            "score",
            "--model",
            p(&campaign),
            "--pool",
            p(&raw),
            "--exclude",
            p(&seed_file),
            "--out",
            p(out),
        ];
        ok(&[&args[..], extra].concat())
    };
    let whole = w.path("whole.csv");
    score(&["--audience-pct", "2"], &whole);
    let mut parts = Vec::new();
    for i in 0..3 {
        let part = w.path(&format!("part{i}.csv"));
        let out = score(
            &["--audience-pct", "2", "--shard", &format!("{i}/3")],
            &part,
        );
        assert!(out.contains(&format!("(shard {i}/3)")), "{out}");
        parts.push(part);
    }
    let merged = w.path("merged.csv");
    let mut args = vec!["merge", "--out", p(&merged)];
    args.extend(parts.iter().map(|x| p(x)));
    ok(&args);
    let whole_csv = std::fs::read_to_string(&whole).unwrap();
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), whole_csv);
    let n_users = std::fs::read_to_string(raw.join("userFeature.data"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        whole_csv.lines().count() - 1,
        (n_users - seeds.len()) * 2 / 100,
        "2 % of the candidates"
    );
    assert!(
        whole_csv
            .lines()
            .skip(1)
            .all(|l| !seeds.contains(&l.split(',').next().unwrap())),
        "seeds are excluded"
    );
    // The pool as Parquet scores the same; the audience as Parquet merges back to the same CSV.
    let parquet = w.path("pool.parquet");
    let out = ok(&[
        "convert",
        "--from",
        p(&raw.join("userFeature.data")),
        "--to",
        p(&parquet),
    ]);
    assert!(out.contains(&format!("converted {n_users} users")), "{out}");
    let from_parquet = w.path("from-parquet.csv");
    let args = [
        "score",
        "--model",
        p(&campaign),
        "--pool",
        p(&parquet),
        "--exclude",
        p(&seed_file),
        "--audience-pct",
        "2",
    ];
    ok(&[&args[..], &["--out", p(&from_parquet)]].concat());
    assert_eq!(std::fs::read_to_string(&from_parquet).unwrap(), whole_csv);
    let as_parquet = w.path("audience.parquet");
    ok(&[&args[..], &["--out", p(&as_parquet)]].concat());
    let back = w.path("back.csv");
    ok(&["merge", p(&as_parquet), "--out", p(&back)]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), whole_csv);

    // The scoring speed check runs both ways on the same users and they agree.
    let out = ok(&[
        "score-throughput",
        "--model",
        p(&campaign),
        "--pool",
        p(&raw),
        "--users",
        "300",
        "--rounds",
        "1",
        "--ceiling-gflops",
        "100",
    ]);
    assert!(out.contains("scoring 300 users"), "{out}");
    assert!(out.contains("| folded (what `score` runs) |"), "{out}");
    let diff: f32 = out
        .split("scores of a user: ")
        .nth(1)
        .and_then(|t| t.trim().trim_end_matches('.').parse().ok())
        .unwrap_or_else(|| panic!("no score difference in {out}"));
    assert!(diff < 1e-5, "{out}");

    // A general model cannot score, a campaign's model cannot be fine-tuned again.
    let e = fails(&[
        "score",
        "--model",
        p(&rec),
        "--pool",
        p(&raw),
        "--out",
        p(&bad_out_path(&w)),
    ]);
    assert!(e.contains("a general model, not a campaign's"), "{e}");
    let e = fails(&strs(&finetune(&campaign, &bad_out_path(&w))));
    assert!(e.contains("this is a campaign's fine-tuned model"), "{e}");
    assert!(!bad_out_path(&w).exists());

    // Ad features given by hand instead of an aid; an unknown field is refused.
    let by_hand = w.path("by-hand.csv");
    let args = [
        "expand",
        "--model",
        p(&rec),
        "--raw",
        p(&raw),
        "--seeds",
        p(&seed_file),
        "--out",
        p(&by_hand),
    ];
    ok(&[
        &args[..],
        &["--ad", "adCategoryId=30,productType=4", "--top", "10"],
    ]
    .concat());
    assert_eq!(
        std::fs::read_to_string(&by_hand).unwrap().lines().count(),
        11
    );
    let e = fails(&[&args[..], &["--ad", "colour=red"]].concat());
    assert!(e.contains("unknown ad field `colour`"), "{e}");

    // Bad seed lists: clear errors, no output written.
    let bad_out = w.path("nothing.csv");
    for (content, want) in [
        (&b""[..], "no user ids"),
        (b"uid\n1\n2\n", "none of the 2 seed ids is in the pool"),
        (b"\x00\x9f\x92\x96binary", "not valid UTF-8"),
        (b"uid\n123x\n", "seeds.bad:2"),
    ] {
        let f = w.path("seeds.bad");
        std::fs::write(&f, content).unwrap();
        let e = fails(&expand_args(&rec, &raw, &f, &aid, &bad_out, &[]));
        assert!(e.contains(want), "{e}");
        assert!(!bad_out.exists());
    }
    let few = w.path("few.csv");
    std::fs::write(&few, seeds[..3].join("\n")).unwrap();
    let e = fails(&expand_args(&rec, &raw, &few, &aid, &bad_out, &[]));
    assert!(e.contains("only 3 seeds match"), "{e}");
    let e = fails(&expand_args(&rec, &raw, &seed_file, "nope", &bad_out, &[]));
    assert!(e.contains("aid nope is not in"), "{e}");
}

#[test]
fn user_errors_are_clear() {
    let w = World::new();
    let e = fails(&[
        "pretrain",
        "--data",
        p(&w.path("raw/train.csv")),
        "--out",
        p(&w.path("x.rec")),
    ]);
    assert!(e.contains("not a prepared dataset"), "{e}");
    let e = fails(&["inspect", p(&w.path("data.lkd"))]);
    assert!(e.contains("not a look-alike model record"), "{e}");
    let e = fails(&[
        "pretrain",
        "--data",
        p(&w.path("data.lkd")),
        "--out",
        p(&w.path("x.rec")),
        "--backend",
        "metal",
    ]);
    assert!(
        e.contains("invalid value 'metal' for '--backend") && e.contains("wgpu-cpu"),
        "{e}"
    );
    let e = fails(&["eval", "--data", p(&w.path("data.lkd"))]);
    assert!(e.contains("--model is required"), "{e}");
    // Margins are standard errors ≥ 0, refused the same way by every command that takes one.
    for (cmd, flag, value) in [
        ("pretrain", "--online-margin", "-1"),
        ("pretrain", "--similar-margin", "NaN"),
        ("bench", "--online-margin", "inf"),
    ] {
        let (data, rec) = (w.path("data.lkd"), w.path("x.rec"));
        let mut args = vec![cmd, "--data", p(&data)];
        if cmd == "pretrain" {
            args.extend(["--out", p(&rec)]);
        }
        let flag_value = format!("{flag}={value}");
        args.push(&flag_value);
        let e = fails(&args);
        assert!(
            e.contains(&format!("invalid value '{value}' for '{flag}"))
                && e.contains("not a number of standard errors ≥ 0"),
            "{cmd} {flag}: {e}"
        );
    }
    assert!(!w.path("x.rec").exists());
    // A record evaluated on data prepared another way (other fields, other vocabularies).
    let listed = w.path("listed.lkd");
    ok(&[
        "prepare",
        "--raw",
        p(&w.path("raw")),
        "--out",
        p(&listed),
        "--fields",
        "listed",
    ]);
    let rec = w.path("listed.rec");
    ok(&[
        "pretrain",
        "--data",
        p(&listed),
        "--out",
        p(&rec),
        "--max-iterations",
        "1",
    ]);
    let e = fails(&["eval", "--data", p(&w.path("data.lkd")), "--model", p(&rec)]);
    assert!(e.contains("was trained on other data than"), "{e}");
}

#[test]
fn bundled_demo_prepares_without_raw() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.lkd");
    let text = ok(&["prepare", "--out", p(&out), "--cold-threshold", "200"]);
    assert!(
        text.contains("bundled demo world") && text.contains("40000 lines"),
        "{text}"
    );
    // Every field the demo's user file holds is surveyed: its noise fields are left out, as said,
    // and interest1 keeps every value; `--fields listed` reads the reference's lists only.
    assert!(
        text.contains("left out as unrelated to the training campaigns' labels")
            && text.contains("marriageStatus (z ")
            && text.contains("interest1 10 → 14"),
        "{text}"
    );
    let listed = dir.path().join("listed.lkd");
    let text = ok(&[
        "prepare",
        "--out",
        p(&listed),
        "--cold-threshold",
        "200",
        "--fields",
        "listed",
    ]);
    assert!(!text.contains("beyond the reference's list"), "{text}");
    let e = fails(&["prepare", "--out", p(&listed), "--max-tokens", "0"]);
    assert!(e.contains("max tokens must be 1..=255"), "{e}");

    // Meta-training speed side by side: four configurations, each a child `pretrain`.
    let json = dir.path().join("throughput.json");
    let text = ok(&[
        "throughput",
        "--data",
        p(&out),
        "--iterations",
        "2",
        "--json",
        p(&json),
    ]);
    assert!(
        text.contains("| lazy Adam, tasks over all cores (default) |"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["iterations"], 2, "{r}");
        assert!(r["rows_per_second"].as_f64().unwrap() > 0.0, "{r}");
        #[cfg(target_os = "linux")]
        assert!(r["peak_rss_mb"].as_f64().unwrap() > 10.0, "{r}");
    }
    // Threads do not change what is learned.
    assert_eq!(runs[0]["final_loss"], runs[1]["final_loss"]);
    assert_eq!(runs[2]["final_loss"], runs[3]["final_loss"]);
}

#[test]
fn bench_reports_every_method_over_seeds() {
    let w = World::new();
    let json = w.path("bench.json");
    let names = [
        ("lr", "LR"),
        ("mlp", "MLP one-stage"),
        ("mlp-emb", "MLP+emb"),
        ("pinterest", "Pinterest"),
        ("hubble", "Hubble"),
        ("mlp-pre", "MLP+pre-training"),
        ("shared-bottom", "Shared-Bottom+pre-training"),
        ("mmoe", "MMoE+pre-training"),
        ("metaheac", "MetaHeac"),
        ("wo-hc", "MetaHeac w/o HC"),
        ("wo-he", "MetaHeac w/o HE"),
        ("wo-meta", "MetaHeac w/o Meta"),
    ];
    let out = ok(&[
        "bench",
        "--data",
        p(&w.path("data.lkd")),
        "--seeds",
        "2",
        "--max-iterations",
        "3",
        "--json",
        p(&json),
        "--svg",
        p(&w.path("charts")),
    ]);
    for file in [
        "auc-by-method.svg",
        "auc-by-seeds.svg",
        "finetune-loss.svg",
        "finetune-auc.svg",
    ] {
        let svg = std::fs::read_to_string(w.path("charts").join(file)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{file}"
        );
        let want: &[&str] = match file {
            "auc-by-method.svg" | "auc-by-seeds.svg" => &["LR", "MetaHeac w/o Meta", "Pinterest"],
            _ => &["MLP one-stage", "MMoE+pre-training", "Hubble", "MetaHeac"],
        };
        // The labels drawn: what lies between `<text …>` and `</text>`.
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
            .collect();
        for name in want {
            assert!(texts.contains(name), "{file} lacks {name}: {texts:?}");
        }
    }
    for (_, name) in names {
        assert!(
            out.contains(&format!("| {name} |")),
            "{name} missing:\n{out}"
        );
    }
    assert!(
        out.contains("cold Δ AUC") && out.contains("cold Δ P@5%"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for (_, name) in names {
        for group in ["cold", "hot"] {
            let g = &v["methods"][name][group];
            for metric in ["mean_auc", "precision", "recall"] {
                let m = &g[metric];
                assert_eq!(
                    m["per_seed"].as_array().unwrap().len(),
                    2,
                    "{name} {group} {metric}"
                );
                assert!(
                    m["mean"].is_number() && m["std"].is_number(),
                    "{name} {group} {metric}: {m}"
                );
            }
            for key in ["vs_metaheac", "vs_metaheac_precision"] {
                if name == "MetaHeac" {
                    assert!(g[key].is_null());
                } else {
                    let p = g[key]["p_value"].as_f64();
                    assert!(
                        p.is_some_and(|p| (0.0..=1.0).contains(&p))
                            || g[key]["n"].as_u64() < Some(2),
                        "{name} {key}: {}",
                        g[key]
                    );
                }
            }
            // Per campaign: aid, seeds, AUC, P@5%, each metric in [0, 1] where present.
            for c in g["per_campaign"].as_array().unwrap() {
                let c = c.as_array().unwrap();
                assert_eq!(c.len(), 4, "{name}: {c:?}");
                for v in &c[2..] {
                    assert!(
                        v.is_null() || v.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
                        "{name}: {c:?}"
                    );
                }
            }
        }
    }
    // What the test campaigns hold: as many as each group's means keep, positives among candidates.
    assert!(out.contains("Test campaigns in the means: cold "), "{out}");
    for group in ["cold", "hot"] {
        let t = &v["test_campaigns"][group];
        assert_eq!(
            t["campaigns"], v["methods"]["LR"][group]["campaigns"],
            "{group}: {t}"
        );
        let n = |k: &str, at: &str| t[k][at].as_u64().unwrap();
        assert!(n("positives", "min") >= 1, "{group}: {t}");
        assert!(
            n("positives", "max") < n("candidates", "max"),
            "{group}: {t}"
        );
        assert!(n("top", "max") <= n("candidates", "max"), "{group}: {t}");
    }
    let e = fails(&[
        "bench",
        "--data",
        p(&w.path("data.lkd")),
        "--methods",
        "lr,gbdt",
    ]);
    assert!(e.contains("unknown method \"gbdt\""), "{e}");

    // A world whose test campaigns are all cold: the empty hot group has no comparison, not a NaN.
    ok(&[
        "prepare",
        "--raw",
        p(&w.path("raw")),
        "--out",
        p(&w.path("cold.lkd")),
        "--cold-threshold",
        "1000000",
    ]);
    let json = w.path("cold.json");
    // LR and MetaHeac only, two seeds, a few iterations: the runs the table checks below read.
    let quick_bench = |data: &Path, json: &Path| {
        ok(&[
            "bench",
            "--data",
            p(data),
            "--methods",
            "lr,metaheac",
            "--seeds",
            "2",
            "--max-iterations",
            "3",
            "--json",
            p(json),
        ])
    };
    let out = quick_bench(&w.path("cold.lkd"), &json);
    assert!(!out.contains("NaN"), "{out}");
    assert!(
        out.contains("| LR | +") || out.contains("| LR | -"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let lr = &v["methods"]["LR"];
    assert_eq!(lr["hot"]["campaigns"], 0, "{lr}");
    assert!(lr["hot"]["vs_metaheac"].is_null(), "{lr}");
    assert!(lr["cold"]["vs_metaheac"]["n"].as_u64() > Some(0), "{lr}");

    // The README's table and its summary across worlds read these runs: the full one as two worlds,
    // the all-cold one (no hot group, no MLP) as a third.
    let table_script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-table.py");
    let bench_table = |args: &[String]| {
        Command::new("python3")
            .arg(table_script)
            .args(args)
            .output()
            .expect("python3 runs scripts/bench-table.py")
    };
    let table = bench_table(&[
        "--one-stage".to_string(),
        format!("a={}", p(&w.path("bench.json"))),
        format!("b={}", p(&w.path("bench.json"))),
        format!("cold={}", p(&json)),
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&table.stderr)
    );
    for row in ["| a (", "| b (", "| cold ("] {
        assert!(text.contains(row), "{row}: {text}");
    }
    assert!(text.contains("Across the 3 worlds"), "{text}");
    // The "worlds ahead" cell of a summary row: "N of M".
    let worlds_ahead = |row: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row}: {text}"));
        line.split('|').nth(3).unwrap().trim().to_string()
    };
    // LR is in every run; MLP+pre-training and the hot group only in the full one (twice).
    let lr_cold = worlds_ahead("| LR | cold, AUC |");
    assert!(lr_cold.ends_with(" of 3"), "{lr_cold}");
    let mlp_hot = worlds_ahead("| MLP+pre-training | hot, AUC |");
    assert!(mlp_hot.ends_with(" of 2"), "{mlp_hot}");
    // Every summary row also counts the worlds whose own test calls MetaHeac ahead / behind, as they
    // stand and after Holm's correction, which can only take calls away.
    for line in text.lines().filter(|l| l.starts_with("| LR |")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let calls =
            |cell: &str| -> Vec<usize> { cell.split(" / ").map(|n| n.parse().unwrap()).collect() };
        let (raw, holm) = (calls(cells[8]), calls(cells[9]));
        assert!(holm[0] <= raw[0] && holm[1] <= raw[1], "{line}");
    }
    // Holm's adjusted p-values, by hand: 0.01 · 4, 0.03 · 3, max(0.09, 0.04 · 2), max(0.09, 0.9 · 1).
    let holm = Command::new("python3")
        .args([
            "-c",
            "import importlib.util, sys; s = importlib.util.spec_from_file_location('t', sys.argv[1]); \
             m = importlib.util.module_from_spec(s); s.loader.exec_module(m); \
             print(' '.join(f'{q:.4f}' for q in m.holm([0.01, 0.04, 0.03, 0.9])))",
            table_script,
        ])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&holm.stdout).trim(),
        "0.0400 0.0900 0.0900 0.9000",
        "{}",
        String::from_utf8_lossy(&holm.stderr)
    );

    // Cross-fitting: the two folds of one seed test every campaign once, and the table pools them
    // into one row whose means are over all of their campaigns.
    // `prepare` of the test world into `out`, testing fold `k` of `n`.
    let fold_args = |out: &Path, n: &str, k: &str| -> Vec<String> {
        let raw = w.path("raw");
        let args = ["prepare", "--raw", p(&raw), "--out", p(out)];
        let split = ["--cold-threshold", "30", "--folds", n, "--fold", k];
        args.iter().chain(&split).map(|s| s.to_string()).collect()
    };
    let e = fails(&strs(&fold_args(&w.path("fold.lkd"), "2", "2")));
    assert!(e.contains("fold 2 of 2"), "{e}");
    // More folds than campaigns leaves fold 0 empty: refused, and no file is written.
    let e = fails(&strs(&fold_args(&w.path("fold.lkd"), "1000", "0")));
    assert!(e.contains("no training or no test campaigns"), "{e}");
    assert!(!w.path("fold.lkd").exists());
    let (mut folds, mut fold_json) = (Vec::new(), Vec::new());
    for k in ["0", "1"] {
        let data = w.path(&format!("fold{k}.lkd"));
        let json = w.path(&format!("fold{k}.json"));
        let out = ok(&strs(&fold_args(&data, "2", k)));
        assert!(out.contains(&format!("fold {k} of 2 tests")), "{out}");
        quick_bench(&data, &json);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        folds.push(v);
        fold_json.push(p(&json).to_string());
    }
    // The folds' test campaigns are disjoint.
    let tested = |v: &serde_json::Value| -> Vec<String> {
        ["cold", "hot"]
            .iter()
            .flat_map(|g| v["methods"]["LR"][g]["per_campaign"].as_array().unwrap())
            .map(|c| c[0].as_str().unwrap().to_string())
            .collect()
    };
    let (a, b) = (tested(&folds[0]), tested(&folds[1]));
    assert!(!a.is_empty() && !b.is_empty());
    assert!(a.iter().all(|aid| !b.contains(aid)), "{a:?} {b:?}");
    let table = bench_table(&[format!("f={}+{}", fold_json[0], fold_json[1])]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    let campaigns = |g: &str| -> u64 {
        folds
            .iter()
            .map(|v| v["methods"]["MetaHeac"][g]["campaigns"].as_u64().unwrap())
            .sum()
    };
    let row = text.lines().find(|l| l.starts_with("| f (")).unwrap();
    assert!(
        row.starts_with(&format!(
            "| f ({} / {})",
            campaigns("cold"),
            campaigns("hot")
        )),
        "{row}"
    );
    // LR's pooled cold mean: the mean over both folds' cold campaigns that have one (per campaign,
    // over seeds), not the mean of the two folds' means.
    let cold: Vec<f64> = folds
        .iter()
        .flat_map(|v| {
            v["methods"]["LR"]["cold"]["per_campaign"]
                .as_array()
                .unwrap()
        })
        .filter_map(|c| c[2].as_f64())
        .collect();
    let mean = cold.iter().sum::<f64>() / cold.len() as f64;
    let lr = row.split('|').nth(2).unwrap().trim();
    assert!(
        lr.starts_with(&format!("{mean:.4}, P@5%")),
        "{lr} vs {mean}"
    );
    // A campaign in two folds is refused.
    let twice = bench_table(&[format!("f={}+{}", fold_json[0], fold_json[0])]);
    assert!(!twice.status.success());
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("is in two folds"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
}

/// Output into a closed pipe (`lookalike inspect R | head`) ends the process quietly, as other Unix
/// tools end, not with a panic in `println!`.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args([
            "synth",
            "--scale",
            "tiny",
            "--out",
            p(&dir.path().join("raw")),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lookalike");
    // The reader goes away before the one line is printed (the world is written first).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

#[test]
fn a_killed_pretrain_resumes_to_the_uninterrupted_result() {
    let w = World::new();
    let data = w.path("data.lkd");
    // The product's schedule, validated every 4 iterations (so the best weights so far are part of
    // the checkpoint), and plain training (`none`: its shuffled pass is part of it).
    for (name, extra) in [
        (
            "validated",
            &["--val-every", "4", "--max-iterations", "12"][..],
        ),
        ("plain", &["--meta", "none", "--epochs", "3"][..]),
    ] {
        let full = w.path(&format!("{name}-full.rec"));
        let part = w.path(&format!("{name}-part.rec"));
        let ckpt = w.path(&format!("{name}.ckpt"));
        let base = ["pretrain", "--data", p(&data), "--seed", "9"];
        let args = |out: &Path, more: &[&str]| -> Vec<String> {
            [&base[..], &["--out", p(out)], extra, more]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let whole = ok(&strs(&args(&full, &[])));
        let out = ok(&strs(&args(
            &part,
            &["--checkpoint", p(&ckpt), "--halt-after", "6"],
        )));
        assert!(out.contains("stopped after iteration 6"), "{out}");
        assert!(
            !part.exists() && ckpt.exists(),
            "{name}: a halted run writes no record"
        );
        // A resume with other flags is refused, naming what differs.
        let mut other = args(&part, &["--resume", p(&ckpt), "--checkpoint", p(&ckpt)]);
        assert_eq!(other[3], "--seed");
        other[4] = "10".into();
        let e = fails(&strs(&other));
        assert!(e.contains("(different seed)"), "{e}");
        let out = ok(&strs(&args(
            &part,
            &["--resume", p(&ckpt), "--checkpoint", p(&ckpt)],
        )));
        assert!(
            weights(&part) == weights(&full),
            "{name}: the resumed run's weights differ from the uninterrupted run's\n{out}"
        );
        // The kept weights can be an early validation's, so the validations after the resume must
        // match too (they measure the weights it went on training).
        let later = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.contains("validation mean AUC"))
                .filter(|l| {
                    l.trim_start().starts_with("iteration 8:")
                        || l.trim_start().starts_with("iteration 12:")
                })
                .map(|l| l.split(" (").next().unwrap().trim().to_string())
                .collect()
        };
        assert_eq!(
            later(&out),
            later(&whole),
            "{name}: validations after the resume"
        );
        if name == "validated" {
            // Iterations 8 and 12 of the configured experts, then of the one-expert model that the
            // validation campaigns compare it with (after the resume too).
            assert_eq!(later(&whole).len(), 4, "{whole}");
            // Killed while the one-expert model trains (`--halt-after` counts the configured model's
            // 12 iterations first): the resume trains that model alone, to the same choice.
            let again = w.path(&format!("{name}-again.rec"));
            let out = ok(&strs(&args(
                &again,
                &["--checkpoint", p(&ckpt), "--halt-after", "18"],
            )));
            assert!(
                out.contains("stopped after iteration 6 of the one-expert model"),
                "{out}"
            );
            assert!(!again.exists() && ckpt.exists());
            let out = ok(&strs(&args(
                &again,
                &["--resume", p(&ckpt), "--checkpoint", p(&ckpt)],
            )));
            assert!(
                out.contains(
                    "at iteration 6 of 12 of the one-expert model (the configured model finished)"
                ),
                "{out}"
            );
            assert!(
                weights(&again) == weights(&full),
                "the resumed one-expert fit changed the record\n{out}"
            );
            let experts = |text: &str| {
                text.lines()
                    .find(|l| l.starts_with("experts: "))
                    .map(str::to_string)
            };
            assert!(experts(&whole).is_some(), "{whole}");
            assert_eq!(experts(&out), experts(&whole));
            assert_eq!(
                later(&out),
                later(&whole)[2..],
                "only the one-expert model trained"
            );
        }
        assert!(
            !ckpt.exists(),
            "{name}: a finished run removes its checkpoint"
        );
    }
    let e = fails(&[
        "pretrain",
        "--data",
        p(&data),
        "--out",
        p(&w.path("x.rec")),
        "--resume",
        p(&data),
    ]);
    assert!(e.contains("not a checkpoint"), "{e}");
}

#[test]
fn multi_task_synth_train_and_bench() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mtl");
    let out = ok(&[
        "mtl",
        "synth",
        "--out",
        p(&data),
        "--scale",
        "tiny",
        "--seed",
        "3",
    ]);
    assert!(out.contains("train.csv: 4000 rows"), "{out}");
    let out = ok(&["mtl", "inspect", "--data", p(&data)]);
    assert!(out.contains("field sizes (train ∪ test)"), "{out}");
    // Without --data: the built-in demo, generated.
    let out = ok(&["mtl", "inspect"]);
    assert!(
        out.contains("generated 100000 rows of built-in demo") && out.contains("test: 20000 rows"),
        "{out}"
    );
    let small = [
        "--embed-dim",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "512",
        "--experts",
        "2",
    ];
    let rec = dir.path().join("mmoe.rec");
    let json = dir.path().join("mmoe.json");
    let args = [
        &["mtl", "train", "--data", p(&data), "--model", "mmoe"][..],
        &small,
        &["--out", p(&rec), "--json", p(&json), "--seed", "4"],
    ]
    .concat();
    let out = ok(&args);
    assert!(out.contains("| MMoE |") && rec.exists(), "{out}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["test"]["ctr"]["auc"].as_f64().is_some(), "{v}");
    assert!(v["test"]["ctcvr"]["logloss"].as_f64().is_some(), "{v}");
    let bench = dir.path().join("bench.json");
    let svg = dir.path().join("svg");
    let args = [
        &["mtl", "bench", "--data", p(&data), "--seeds", "2"][..],
        &small,
        &["--json", p(&bench), "--svg", p(&svg)],
    ]
    .concat();
    let out = ok(&args);
    assert!(
        out.contains("| Shared-Bottom |") && out.contains("bench finished"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&bench).unwrap()).unwrap();
    for model in [
        "SingleTask",
        "Shared-Bottom",
        "OMoE",
        "MMoE",
        "PLE",
        "AITM",
        "MetaHeac",
    ] {
        for task in ["ctr", "ctcvr"] {
            for metric in ["auc", "logloss"] {
                let s = &v["models"][model][task][metric];
                assert_eq!(
                    s["per_seed"].as_array().map(Vec::len),
                    Some(2),
                    "{model} {task} {metric}: {v}"
                );
                assert!(s["mean"].as_f64().is_some() && s["std"].as_f64().is_some());
            }
        }
    }
    assert!(svg.join("mtl-auc-by-model.svg").exists());
    let e = fails(&[
        "mtl",
        "train",
        "--data",
        p(&dir.path().join("nowhere")),
        "--model",
        "omoe",
    ]);
    assert!(e.contains("train.csv") && e.contains("missing file"), "{e}");
}
