//! The pieces the web app and `lookalike expand` share: the pool format, the online plan, lazy and
//! asynchronous fine-tuning reads, and the teaching walkthrough of a meta-step.

mod common;
use common::*;

use burn::tensor::Device;
use lookalike_core::data::{Campaign, Role, Row, UserTable};
use lookalike_core::finetune::{
    FineTuneConfig, FineTuner, gate_weights, gate_weights_async, predict, predict_async,
};
use lookalike_core::meta::{MetaConfig, MetaTrainer};
use lookalike_core::online::{self, OnlineConfig, OnlineError, SeedMatch, match_seeds, uid_index};
use lookalike_core::pool::{Pool, PoolError};
use lookalike_core::schema::Vocabulary;
use lookalike_core::seeds::parse_seed_list;
use std::collections::HashSet;

/// Polls a future that never waits (the CPU backend's async reads complete at once).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a CPU read did not complete at once"),
    }
}

fn campaigns(n_users: u32) -> Vec<Campaign> {
    (0..3u32)
        .map(|k| Campaign {
            aid: format!("{}", 100 + k),
            ad: vec![k + 1, 1],
            role: [Role::Train, Role::Cold, Role::Hot][k as usize],
            stage1: (0..n_users)
                .step_by(3 + k as usize)
                .map(|u| Row {
                    user: u,
                    label: u % 5 == 0,
                })
                .collect(),
            stage2: (0..n_users)
                .step_by(7)
                .map(|u| Row {
                    user: u,
                    label: u % 2 == 0,
                })
                .collect(),
        })
        .collect()
}

#[test]
fn pool_round_trips_and_rejects_damage() {
    let s = schema();
    let users = users(120, 5);
    let pool = Pool::new(&s, users.clone(), campaigns(120), "test");
    assert_eq!(pool.header.id_bytes, 2);
    let bytes = pool.to_bytes();
    let back = Pool::from_bytes(&bytes).unwrap();
    assert_eq!(back, pool);
    assert!(back.check_schema(&s).is_ok());

    // Other vocabularies: refused, naming both fingerprints.
    let mut other = s.clone();
    other.user_single[0].vocab = Vocabulary::from_tokens(["a".to_string(), "b".to_string()]);
    match back.check_schema(&other) {
        Err(PoolError::SchemaMismatch { pool, model }) => assert_ne!(pool, model),
        r => panic!("expected a schema mismatch, got {r:?}"),
    }

    assert!(matches!(
        Pool::from_bytes(b"LKALIKE\0xxxx"),
        Err(PoolError::BadMagic)
    ));
    for cut in [10, 30, bytes.len() / 2, bytes.len() - 1] {
        assert!(Pool::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // A damaged body is an error, never a panic or a huge allocation.
    let mut bad = bytes.clone();
    let n = bad.len();
    for b in &mut bad[n - 40..n - 20] {
        *b ^= 0x5a;
    }
    assert!(Pool::from_bytes(&bad).is_err());

    // Ids past u16 switch to 4-byte ids.
    let mut wide = users;
    wide.single[0] = 70_000;
    let p = Pool::new(&s, wide, Vec::new(), "wide");
    assert_eq!(p.header.id_bytes, 4);
    assert_eq!(Pool::from_bytes(&p.to_bytes()).unwrap(), p);
}

#[test]
fn seeds_are_matched_and_planned() {
    let users = users(500, 8);
    let index = uid_index(&users);
    let text = "uid\r\n3\r\n7\r\n7\r\n999999\r\n".to_string()
        + &(10..60).map(|u| format!("{u}\n")).collect::<String>();
    let list = parse_seed_list(text.as_bytes()).unwrap();
    let found = match_seeds(&list, &index);
    assert_eq!(found.listed, 53);
    assert_eq!(found.duplicates, 1);
    assert_eq!(found.matched.len(), 52);

    let config = OnlineConfig::new();
    let plan = online::plan(users.len(), &found, &config, 1).unwrap();
    let seeds: HashSet<u32> = found.matched.iter().copied().collect();
    assert_eq!(plan.held.len(), 5, "10 % of 52 held out");
    assert_eq!(plan.train_seeds.len() + plan.held.len(), 52);
    assert!(plan.held.iter().all(|u| !plan.train_seeds.contains(u)));
    assert_eq!(plan.candidates.len(), 500 - 52);
    assert!(plan.candidates.iter().all(|u| !seeds.contains(u)));
    assert!(plan.negatives.iter().all(|u| !seeds.contains(u)));
    // 20 per training seed (940), capped by the 448 candidates there are.
    assert_eq!(plan.negatives.len(), 448);
    let positives = plan.rows.iter().filter(|r| r.label).count();
    assert_eq!(positives, 47);
    // Held-out seeds + min(2000, candidates) random candidates.
    assert_eq!(plan.probe.len(), 5 + 448);
    assert_eq!(plan.probe_labels.iter().filter(|&&l| l).count(), 5);
    assert!(plan.warning.is_some(), "52 seeds is a small list");
    // Same seed, same plan.
    let again = online::plan(users.len(), &found, &config, 1).unwrap();
    assert_eq!(again.rows, plan.rows);
    assert_eq!(again.held, plan.held);

    let none = SeedMatch {
        listed: 4,
        duplicates: 0,
        matched: Vec::new(),
    };
    assert_eq!(
        online::plan(500, &none, &config, 1).unwrap_err(),
        OnlineError::NoMatches { listed: 4 }
    );
    let few = SeedMatch {
        listed: 3,
        duplicates: 0,
        matched: vec![1, 2, 3],
    };
    assert_eq!(
        online::plan(500, &few, &config, 1).unwrap_err(),
        OnlineError::TooFew {
            matched: 3,
            min: 10
        }
    );
    let all = SeedMatch {
        listed: 12,
        duplicates: 0,
        matched: (0..12).collect(),
    };
    assert_eq!(
        online::plan(12, &all, &config, 1).unwrap_err(),
        OnlineError::NothingToExpand
    );
    // Below the hold-out minimum every seed trains.
    let small = SeedMatch {
        listed: 12,
        duplicates: 0,
        matched: (0..12).collect(),
    };
    let p = online::plan(500, &small, &config, 1).unwrap();
    assert!(p.held.is_empty() && p.probe.is_empty());

    assert_eq!(online::audience_size(1000, 5.0), 50);
    assert_eq!(online::audience_size(10, 1.0), 1);
    assert_eq!(online::audience_size(10, 100.0), 10);
}

#[test]
fn lazy_steps_and_async_reads_match_the_synchronous_ones() {
    let device = Device::flex().autodiff();
    let s = schema();
    let c = config(&s);
    let u = users(300, 2);
    let r = rows(300, 4);
    let ad = [1u32, 2];
    let cfg = || FineTuneConfig::reference().with_batch(64).with_epochs(1);
    let mut a = FineTuner::new(model(&c, &device, 1), cfg(), &u, &ad, &r, 9);
    let mut b = FineTuner::new(model(&c, &device, 1), cfg(), &u, &ad, &r, 9);
    assert_eq!(a.total_steps(), 5);
    while let Some(x) = a.step().unwrap() {
        let y = b.step_lazy().unwrap().into_scalar::<f32>();
        assert_eq!(x, y);
    }
    assert!(b.step_lazy().is_none());
    let (a, b) = (a.into_model().unwrap(), b.into_model().unwrap());
    let sync = predict(&a, &u, &ad, &r, 50);
    let asynchronous = ready(predict_async(&b, &u, &ad, &r, 50)).unwrap();
    assert_eq!(sync, asynchronous);
    let g = gate_weights(&a, &u, &ad, &r);
    assert_eq!(g, ready(gate_weights_async(&b, &u, &ad, &r)).unwrap());
    assert_eq!(g.expert.len(), 3);
    assert_eq!(g.critic.len(), 2);
}

/// The product's online rule (wide fit chosen on the hold-out, early stopping) read back
/// asynchronously, as the web page runs it, takes the same steps to the same weights.
#[test]
fn the_product_rule_runs_the_same_with_async_reads() {
    let device = Device::flex().autodiff();
    let s = schema();
    let c = config(&s);
    let u = users(300, 2);
    let camp = &learnable_campaigns(&u, 1)[0];
    let ad = [1u32, 2];
    // One run (the two-run average has a test of its own, below).
    let cfg = FineTuneConfig::new().with_batch(32).with_check_every(3);
    assert!(cfg.fit_wide && cfg.holdout > 0.0);
    let mut a = FineTuner::new(model(&c, &device, 1), cfg.clone(), &u, &ad, &camp.stage1, 9);
    let mut b = ready(FineTuner::new_async(
        model(&c, &device, 1),
        cfg,
        &u,
        &ad,
        &camp.stage1,
        9,
    ))
    .unwrap();
    assert!(a.wide_c().is_some());
    assert_eq!(a.wide_c(), b.wide_c());
    while let Some(x) = a.step().unwrap() {
        assert_eq!(Some(x), ready(b.step_async()).unwrap());
    }
    assert_eq!(ready(b.step_async()).unwrap(), None);
    // Step 0 has no mini-batch loss (NaN), so compare the bits.
    let bits = |c: &[lookalike_core::finetune::CurvePoint]| -> Vec<(usize, u32, Option<f32>)> {
        c.iter()
            .map(|p| (p.step, p.loss.to_bits(), p.holdout_loss))
            .collect()
    };
    assert_eq!(bits(&a.curve), bits(&b.curve));
    assert!(a.curve.iter().filter(|p| p.holdout_loss.is_some()).count() > 2);
    // Both refit on all rows (the product's rule), the browser's with asynchronous reads.
    let (a, b) = (
        a.into_model().unwrap(),
        ready(b.into_model_async()).unwrap(),
    );
    assert_eq!(
        predict(&a, &u, &ad, &camp.stage1, 64),
        predict(&b, &u, &ad, &camp.stage1, 64)
    );
}

/// `FineTuneConfig::soup` averages two runs from the general model, one without the wide fit and
/// one of the wide fit alone: the result is exactly those two runs' weights averaged, whether it is
/// read back synchronously or, as the web page does (refit stepped apart), asynchronously.
#[test]
fn the_soup_averages_two_runs() {
    let device = Device::flex().autodiff();
    let s = schema();
    let c = config(&s);
    let u = users(300, 2);
    let camp = &learnable_campaigns(&u, 1)[0];
    let ad = [1u32, 2];
    assert!(!FineTuneConfig::new().soup, "one run by default");
    let cfg = FineTuneConfig::new()
        .with_batch(32)
        .with_check_every(3)
        .with_soup(true);
    assert!(cfg.soups(true) && !cfg.soups(false));
    // Non-seeds sampled from the pool (`expand`, the page) keep one run.
    assert!(!cfg.clone().sampled_negatives().soups(true));
    let run = |cfg: FineTuneConfig| {
        let mut ft = FineTuner::new(model(&c, &device, 1), cfg, &u, &ad, &camp.stage1, 9);
        while ft.step().unwrap().is_some() {}
        ft
    };
    let soup = run(cfg.clone());
    assert!(soup.soups());
    assert_eq!(
        soup.wide_c(),
        None,
        "the first run leaves the wide part as meta-trained"
    );
    let soup = soup.into_model().unwrap();
    let one = cfg.clone().with_soup(false);
    let steps = run(one.clone().with_fit_wide(false));
    assert!(!steps.soups() && steps.step > 0);
    let wide = run(one.with_epochs(0));
    assert!(wide.wide_c().is_some() && wide.step == 0);
    let by_hand = lookalike_core::grads::interpolate(
        steps.into_model().unwrap(),
        &wide.into_model().unwrap(),
        0.5,
    );
    let p = |m| predict(m, &u, &ad, &camp.stage1, 64);
    assert_eq!(p(&soup), p(&by_hand));
    // Unlike either run alone.
    let steps_only = run(cfg.clone().with_soup(false).with_fit_wide(false))
        .into_model()
        .unwrap();
    assert_ne!(p(&soup), p(&steps_only));
    // Asynchronously: in one go, and with the refit stepped apart as the page steps it.
    let run_async = || {
        let mut b = ready(FineTuner::new_async(
            model(&c, &device, 1),
            cfg.clone(),
            &u,
            &ad,
            &camp.stage1,
            9,
        ))
        .unwrap();
        while ready(b.step_async()).unwrap().is_some() {}
        b
    };
    let whole = ready(run_async().into_model_async()).unwrap();
    assert_eq!(p(&whole), p(&soup));
    let apart = match ready(run_async().into_refit_async()).unwrap() {
        Ok(mut again) => {
            while ready(again.step_async()).unwrap().is_some() {}
            ready(again.into_model_async()).unwrap()
        }
        Err(model) => *model,
    };
    assert_eq!(p(&apart), p(&soup));

    // Validation's shortcut: the two runs and their average from two fine-tunes score as three
    // separate fine-tunes with those recipes do.
    use lookalike_core::finetune::{OnlineRecipe, tune_and_score, tune_and_score_both};
    let one = cfg.clone().with_soup(false);
    let (tune, scored) = camp.stage1.split_at(camp.stage1.len() / 2);
    let both = tune_and_score_both(model(&c, &device, 1), &one, &u, &ad, tune, scored, 5).unwrap();
    let recipes = [
        OnlineRecipe::NoWideFit,
        OnlineRecipe::WideOnly,
        OnlineRecipe::Averaged,
    ];
    for (recipe, shared) in recipes.into_iter().zip(&both) {
        let config = recipe.apply(one.clone());
        let (alone, _) =
            tune_and_score(model(&c, &device, 1), &config, &u, &ad, tune, scored, 5).unwrap();
        assert_eq!(&alone, shared, "{recipe:?}");
    }
    assert_ne!(both[0], both[2]);
}

/// The weight-space average of two models, parameter by parameter.
#[test]
fn interpolation_weighs_each_parameter() {
    let device = Device::flex();
    let s = schema();
    let c = config(&s);
    let (a, b) = (model(&c, &device, 1), model(&c, &device, 2));
    let flat = |m: &lookalike_core::model::MetaHeac| -> Vec<f32> {
        m.experts[0].layers[0]
            .weight
            .val()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let (fa, fb) = (flat(&a), flat(&b));
    assert_ne!(fa, fb);
    let mid = lookalike_core::grads::interpolate(a.clone(), &b, 0.25);
    for ((x, y), z) in fa.iter().zip(&fb).zip(flat(&mid)) {
        assert!((0.25 * x + 0.75 * y - z).abs() < 1e-6);
    }
    assert_eq!(flat(&lookalike_core::grads::interpolate(a, &b, 1.0)), fa);
}

#[test]
fn walkthrough_takes_one_meta_step_apart() {
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(400, 31);
    let camps = learnable_campaigns(&u, 2);
    let refs: Vec<&Campaign> = camps.iter().collect();
    let cfg = MetaConfig::new()
        .with_support_size(128)
        .with_query_size(128)
        .with_inner_lr(0.1)
        .with_outer_lr(0.05);
    let mut t = MetaTrainer::new(model(&config(&s), &device, 9), cfg, &u, &refs, 3);
    let w = t.walkthrough(1);
    assert_eq!(w.aid, "1");
    assert_eq!((w.support.len(), w.query.len()), (128, 128));
    // The inner step fits the support set; the meta-step helps the adapted model on the query set.
    assert!(w.support_after < w.support_before, "{w:?}");
    assert!(w.query_after_meta < w.query_adapted, "{w:?}");
}

#[test]
fn a_streamed_pool_draws_what_a_pool_in_memory_draws() {
    use lookalike_core::online::{PoolSampler, UserRow};
    // uids unlike the table indices, so a mix-up of the two shows.
    let mut users = users(600, 4);
    for (i, u) in users.uids.iter_mut().enumerate() {
        *u = 1_000 + 7 * i as u64;
    }
    let text: String = (0..60)
        .map(|i| format!("{}\n", 1_000 + 7 * (i * 9) as u64))
        .chain(["5\n".to_string()]) // not in the pool
        .collect();
    let list = parse_seed_list(text.as_bytes()).unwrap();
    let config = OnlineConfig::new()
        .with_negatives_per_seed(4)
        .with_probe_candidates(100);
    let found = match_seeds(&list, &uid_index(&users));
    let in_memory = online::plan(users.len(), &found, &config, 3).unwrap();

    // The same pool streamed in uneven pieces, only the drawn users kept.
    let mut sampler = PoolSampler::<UserRow>::new(&list, &config, 3);
    for (lo, hi) in [(0, 250), (250, 251), (251, 600)] {
        for u in lo..hi {
            sampler.offer(users.uids[u], || UserRow::of(&users, u));
        }
    }
    assert_eq!(sampler.candidates(), 540);
    let sampled = sampler.finish().unwrap();
    assert_eq!((sampled.listed, sampled.seeds()), (61, 60));
    let (kept, streamed) = sampled.into_table(UserTable::new(&schema()), &config);
    assert!(kept.len() < users.len(), "only the drawn users are kept");
    assert!(streamed.candidates.is_empty());

    // Same rows, same labels, same users (by uid and features), in the same order.
    let by_uid = |t: &UserTable, rows: &[Row]| -> Vec<(u64, bool, Vec<u32>, Vec<u32>)> {
        rows.iter()
            .map(|r| {
                let u = r.user as usize;
                (
                    t.uids[u],
                    r.label,
                    t.single_of(u).to_vec(),
                    t.multi_of(u).to_vec(),
                )
            })
            .collect()
    };
    assert_eq!(
        by_uid(&kept, &streamed.rows),
        by_uid(&users, &in_memory.rows)
    );
    assert_eq!(
        by_uid(&kept, &streamed.probe),
        by_uid(&users, &in_memory.probe)
    );
    assert_eq!(streamed.probe_labels, in_memory.probe_labels);
    assert_eq!(streamed.held.len(), 6);
    // 4 non-seeds per training seed, distinct, none a seed.
    assert_eq!(streamed.negatives.len(), 54 * 4);
    let negatives: HashSet<u64> = streamed
        .negatives
        .iter()
        .map(|&u| kept.uids[u as usize])
        .collect();
    assert_eq!(negatives.len(), 54 * 4);
    assert!(negatives.iter().all(|u| !list.uids.contains(u)));
}

#[test]
fn the_best_k_of_parts_merge_to_the_best_k_of_the_whole() {
    use lookalike_core::expansion::Shard;
    use lookalike_core::online::{Scored, TopK};
    // Scores with many ties (a coarse grid), so the uid tie-break matters.
    let all: Vec<Scored> = (0..5_000u64)
        .map(|uid| Scored {
            uid: uid * 13 + 1,
            score: ((uid * 7919) % 97) as f32 / 97.0,
        })
        .collect();
    let mut want = all.clone();
    want.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.uid.cmp(&b.uid)));
    want.truncate(300);

    let mut whole = TopK::new(300);
    all.iter().for_each(|&s| whole.offer(s));
    assert_eq!(whole.into_sorted(), want);

    let parts: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
    let mut merged = TopK::new(300);
    let mut sizes = Vec::new();
    for shard in &parts {
        let mut top = TopK::new(300);
        let mine: Vec<&Scored> = all.iter().filter(|s| shard.contains(s.uid)).collect();
        sizes.push(mine.len());
        mine.into_iter().for_each(|&s| top.offer(s));
        top.into_sorted().into_iter().for_each(|s| merged.offer(s));
    }
    assert_eq!(merged.into_sorted(), want);
    // Every user in exactly one part, the parts of similar size.
    assert_eq!(sizes.iter().sum::<usize>(), all.len());
    assert!(sizes.iter().all(|&n| n > 1_100 && n < 1_400), "{sizes:?}");
    assert!(Shard::ALL.contains(42));
    for bad in ["4/4", "1/0", "x/2", "3"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    assert!(TopK::new(0).is_empty());
}

#[test]
fn a_users_pool_score_does_not_depend_on_who_shares_its_pass() {
    use lookalike_core::expansion::score_blocks;
    // The product's dimensions: the CPU kernels' blocking (and order of summation) depends on them.
    let s = schema();
    let model = lookalike_core::model::MetaHeacConfig::for_schema(&s)
        .init(lookalike_core::model::Init::Seeded(4), &Device::flex());
    let users = users(5_000, 8);
    let rows: Vec<Row> = (0..5_000u32)
        .map(|user| Row { user, label: false })
        .collect();
    let whole = score_blocks(&model, &users, &[1, 2], &rows).unwrap();
    // The same users in passes of other sizes, as shards, Spark partitions or Arrow batches cut them.
    for size in [1, 7, 300, 2_999] {
        let parts: Vec<f32> = rows
            .chunks(size)
            .take(3)
            .flat_map(|c| score_blocks(&model, &users, &[1, 2], c).unwrap())
            .collect();
        let n = parts.len();
        assert_eq!(parts, whole[..n], "passes of {size} rows");
    }
}

/// Users `range` of `users` as a table of their own (a piece of a pool).
fn piece(users: &UserTable, range: std::ops::Range<usize>) -> UserTable {
    let mut t = UserTable::new(&schema());
    for u in range {
        t.push(
            users.uids[u],
            users.single_of(u),
            users.multi_of(u),
            users.lens_of(u),
        );
    }
    t
}

#[test]
fn the_folded_scorer_gives_the_forward_passes_scores() {
    use burn::module::Param;
    use burn::tensor::{Distribution, Tensor};
    use lookalike_core::expansion::PoolScorer;
    use lookalike_core::model::{CriticCombine, GateContext};
    let s = schema();
    let device = Device::flex();
    let users = users(700, 3);
    let rows: Vec<Row> = (0..700u32).map(|user| Row { user, label: false }).collect();
    for (context, combine, wide) in [
        (GateContext::FieldMean, CriticCombine::Sum, true),
        (GateContext::FieldMean, CriticCombine::Mean, false),
        (GateContext::None, CriticCombine::Sum, true),
    ] {
        let c = config(&s)
            .with_gate_context(context)
            .with_critic_combine(combine)
            .with_wide(wide);
        let mut m = model(&c, &device, 11);
        // Wide weights away from their zero start, and a scale away from 1, so the wide part counts.
        for table in &mut m.wide {
            let [v, _] = table.weight.val().dims();
            table.weight = Param::from_tensor(Tensor::random(
                [v, 1],
                Distribution::Normal(0.0, 0.5),
                &device,
            ));
        }
        if let Some(scale) = &mut m.wide_scale {
            *scale = Param::from_tensor(Tensor::from_floats([0.7], &device));
        }
        let ad = [2, 1];
        let forward = predict(&m, &users, &ad, &rows, 256);
        // Every field folded, none, and a budget that folds the two smallest tables only (a folded
        // row: 3 experts × 6 + 2 gates × 4 columns).
        let mut sizes: Vec<usize> = m
            .user_single
            .iter()
            .chain(&m.user_multi)
            .map(|e| e.weight.val().dims()[0])
            .collect();
        sizes.sort();
        let two_smallest = (sizes[0] + sizes[1]) * (3 * 6 + 2 * 4) * 4;
        for (budget, folded) in [(usize::MAX, 4), (0, 0), (two_smallest, 2)] {
            let scorer = PoolScorer::with_budget(&m, &ad, budget);
            assert_eq!(scorer.folded_fields(), folded, "budget {budget}");
            let scores = scorer.score(&users).unwrap();
            assert_eq!(scores.len(), forward.len());
            for (u, (a, b)) in scores.iter().zip(&forward).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{context:?} {combine:?} wide {wide}, budget {budget}, user {u}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn a_users_folded_score_does_not_depend_on_who_shares_its_pass() {
    use lookalike_core::expansion::PoolScorer;
    let s = schema();
    let model = lookalike_core::model::MetaHeacConfig::for_schema(&s)
        .init(lookalike_core::model::Init::Seeded(4), &Device::flex());
    let users = users(5_000, 8);
    let scorer = PoolScorer::new(&model, &[1, 2]);
    let whole = scorer.score(&users).unwrap();
    // Pieces of 1,500 users cross the passes' boundaries.
    for size in [1, 7, 300, 1_500] {
        let parts: Vec<f32> = (0..3)
            .flat_map(|i| {
                scorer
                    .score(&piece(&users, i * size..(i + 1) * size))
                    .unwrap()
            })
            .collect();
        assert_eq!(parts, whole[..3 * size], "pieces of {size} users");
    }
    // Any users of the table, in any order, score as they do in the whole pool.
    let some: Vec<u32> = (0..2_500u32).rev().step_by(3).collect();
    let expected: Vec<f32> = some.iter().map(|&u| whole[u as usize]).collect();
    assert_eq!(scorer.score_users(&users, &some).unwrap(), expected);
    // The asynchronous read-backs (the web page's) give the same scores.
    let folded_async = ready(PoolScorer::new_async(&model, &[1, 2])).unwrap();
    assert_eq!(folded_async.folded_fields(), scorer.folded_fields());
    assert_eq!(
        ready(folded_async.score_users_async(&users, &some)).unwrap(),
        expected
    );
}

#[test]
fn flops_a_user_are_counted_from_the_layers() {
    use lookalike_core::expansion::PoolScorer;
    let s = schema();
    let m = model(&config(&s), &Device::flex(), 2);
    // 4 user fields × D 4 = 16 inputs; the gates see the field mean and 2 ad fields (12). Multiply-adds:
    // experts 3 × (16·6 + 6·5) = 378, gates 12·4 + 4·3 + 12·4 + 4·2 = 116, critics 2 × 5 = 10.
    assert_eq!(m.flops_per_user(), 2.0 * 504.0);
    // Folded, every table: the experts' second layers (90), the gates' outputs (20), the critics (10).
    let all = PoolScorer::with_budget(&m, &[1, 1], usize::MAX);
    assert_eq!(all.executed_flops_per_user(), 2.0 * 120.0);
    // None folded: the pooled fields' product (16 × (3·6 + 2·4) = 416) on top.
    let none = PoolScorer::with_budget(&m, &[1, 1], 0);
    assert_eq!(none.executed_flops_per_user(), 2.0 * 536.0);
}
