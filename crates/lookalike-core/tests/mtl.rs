//! The multi-task models: forward shapes, gates that sum to one, field offsets, the record round
//! trip, a seeded run that repeats, and training that learns a planted signal.

use burn::tensor::{Device, Tensor};
use lookalike_core::model::Init;
use lookalike_core::mtl::{AdaptScope, MtlConfig, MtlInputs, MtlModelKind, MtlTable, offsets};
use lookalike_core::mtl_train::{
    MtlTrainConfig, evaluate, predict, record_from_bytes, record_to_bytes, train,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SIZES: [usize; 3] = [5, 3, 7];

/// Dropout draws from the backend's one random stream: two trainings at once in this process (the
/// test harness runs tests in parallel) would interleave their draws, so they take turns.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Rows whose click follows field 0 (ids ≥ 3 click more) and whose conversion needs a click and
/// field 2's id being even, with two numerical features (the first informative).
fn table(n: usize, seed: u64) -> MtlTable {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = MtlTable::new(
        (1..=3).map(|i| format!("categorical_{i}")).collect(),
        vec!["numerical_1".into(), "numerical_2".into()],
    );
    for _ in 0..n {
        let cat: Vec<u32> = SIZES
            .iter()
            .map(|&s| rng.random_range(0..s as u32))
            .collect();
        let x: f32 = rng.random::<f32>() * 2.0 - 1.0;
        let p_click = if cat[0] >= 3 { 0.6 } else { 0.1 } + 0.2 * x;
        let click = rng.random::<f32>() < p_click;
        let conversion = click && cat[2].is_multiple_of(2) && rng.random::<f32>() < 0.7;
        t.push(&cat, &[x, rng.random::<f32>()], click, conversion);
    }
    t
}

fn config(kind: MtlModelKind) -> MtlConfig {
    MtlConfig::new(kind, SIZES.to_vec(), 2)
        .with_embed_dim(4)
        .with_bottom_dims(vec![16, 8])
        .with_tower_dims(vec![6])
        .with_num_experts(3)
}

#[test]
fn every_model_gives_a_probability_per_task_and_row() {
    let device = Device::flex();
    let t = table(10, 1);
    let rows: Vec<usize> = (0..10).collect();
    let x = MtlInputs::new(&t, &rows, &offsets(&SIZES), 2, &device);
    // Field offsets: one table, field f starting after the earlier fields' rows.
    assert_eq!(offsets(&SIZES), vec![0, 5, 8]);
    for kind in MtlModelKind::ALL {
        let m = config(kind).init(Init::Seeded(3), &device);
        let out = m.forward(&x);
        assert_eq!(out.tasks.len(), 2, "{kind:?}");
        for o in &out.tasks {
            assert_eq!(o.log_prob.dims(), [10]);
            let p: Vec<f32> = o.prob().into_data().try_to_vec::<f32>().unwrap();
            let q: Vec<f32> = o
                .log_not_prob
                .clone()
                .exp()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            for (p, q) in p.iter().zip(&q) {
                assert!(
                    (0.0..=1.0).contains(p) && (p + q - 1.0).abs() < 1e-5,
                    "{kind:?}"
                );
            }
        }
        // OMoE has one gate, MMoE one per task (over 3 experts); PLE (1 shared and 1 own expert per
        // level with 3 experts asked) a gate per task per level, [own, shared], and a shared gate at
        // the first level, [task 0's, task 1's, shared]; AITM an attention over (transferred, own)
        // for the second task.
        let widths: Vec<usize> = match kind {
            MtlModelKind::OMoE => vec![3],
            MtlModelKind::MMoE => vec![3, 3],
            MtlModelKind::Ple => vec![2, 2, 3, 2, 2],
            MtlModelKind::Aitm => vec![2],
            // Per task: the expert gate (3) and the critic gate (5 critics).
            MtlModelKind::MetaHeac => vec![3, 5, 3, 5],
            _ => vec![],
        };
        let got: Vec<usize> = out.gates.iter().map(|g| g.dims()[1]).collect();
        assert_eq!(got, widths, "{kind:?}");
        for g in &out.gates {
            assert_eq!(g.dims()[0], 10);
            let sums: Vec<f32> = g
                .clone()
                .sum_dim(1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            assert!(
                sums.iter().all(|s| (s - 1.0).abs() < 1e-5),
                "{kind:?} {sums:?}"
            );
        }
        let loss: f32 = m.loss(&x).into_scalar();
        assert!(loss.is_finite() && loss > 0.0);
    }
}

#[test]
fn the_embedding_table_is_one_xavier_uniform_table() {
    let device = Device::flex();
    let m = config(MtlModelKind::SharedBottom).init(Init::Seeded(1), &device);
    let lookalike_core::mtl::MtlNet::SharedBottom(sb) = &m.net else {
        panic!("a shared-bottom net")
    };
    let w: Tensor<2> = sb.embedding.table.weight.val();
    assert_eq!(w.dims(), [15, 4]);
    let bound = (6.0f32 / (4.0 + 15.0)).sqrt();
    let v: Vec<f32> = w.into_data().try_to_vec::<f32>().unwrap();
    assert!(v.iter().all(|x| x.abs() <= bound));
    assert!(v.iter().any(|x| x.abs() > bound / 2.0));
}

#[test]
fn training_learns_repeats_and_round_trips() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let (tr, va, te) = (table(3000, 1), table(800, 2), table(800, 3));
    let tc = MtlTrainConfig::new()
        .with_batch_size(256)
        .with_epochs(6)
        .with_lr(1e-2);
    let c = config(MtlModelKind::MMoE);
    let fit = train(&c, &tc, &tr, &va, 7, &device, &mut |_| {}).unwrap();
    let scores = evaluate(&fit.model, &te, &SIZES, 512).unwrap();
    // The planted signal: field 0 for clicks, field 2 for conversions.
    assert!(scores[0].auc.unwrap() > 0.7, "{scores:?}");
    assert!(scores[1].auc.unwrap() > 0.7, "{scores:?}");
    assert!(fit.epochs.iter().any(|e| e.best) && fit.best_epoch >= 1);
    // Same seed, same predictions (dropout is seeded too).
    let again = train(&c, &tc, &tr, &va, 7, &device, &mut |_| {}).unwrap();
    assert_eq!(
        predict(&fit.model, &te, &SIZES, 512),
        predict(&again.model, &te, &SIZES, 512)
    );
    // The record holds the config and the weights.
    let bytes = record_to_bytes(
        &fit.model,
        &c,
        serde_json::json!({ "epoch": fit.best_epoch }),
    )
    .unwrap();
    let (header, back) = record_from_bytes(&bytes, &device).unwrap();
    assert_eq!(header["epoch"], fit.best_epoch);
    assert_eq!(
        predict(&back, &te, &SIZES, 512),
        predict(&fit.model, &te, &SIZES, 512)
    );
    assert!(record_from_bytes(b"not a record", &device).is_err());
}

#[test]
fn the_kept_model_is_the_best_epochs_batch_norm_included() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    // Validation labels unrelated to the rows: the best epoch is an early one, and the epochs after
    // it go on training (and moving BatchNorm's running statistics).
    let tr = table(2000, 4);
    let mut va = table(500, 5);
    let mut rng = StdRng::seed_from_u64(11);
    for (c, v) in va.click.iter_mut().zip(va.conversion.iter_mut()) {
        *c = rng.random_range(0..2);
        *v = *c * rng.random_range(0..2);
    }
    let tc = MtlTrainConfig::new()
        .with_batch_size(128)
        .with_epochs(4)
        .with_patience(10)
        .with_lr(1e-2);
    let c = config(MtlModelKind::SharedBottom);
    let mut at_best = Vec::new();
    let mut bests = 0;
    let fit = train(&c, &tc, &tr, &va, 2, &device, &mut |p| {
        if let lookalike_core::mtl_train::MtlProgress::Best(_, m) = p {
            at_best = predict(m, &va, &SIZES, 512);
            bests += 1;
        }
    })
    .unwrap();
    assert!(bests >= 1);
    assert!(
        fit.best_epoch < fit.epochs.len(),
        "the test needs a best epoch before the last"
    );
    // Later epochs train on (and move BatchNorm's running statistics); the kept model must not.
    assert_eq!(predict(&fit.model, &va, &SIZES, 512), at_best);
}

#[test]
fn ple_gates_are_sized_by_mtreclibs_expert_split() {
    // The defaults: 8 experts → 4 shared and 4 per task at each of the 2 levels.
    let c = MtlConfig::new(MtlModelKind::Ple, SIZES.to_vec(), 2)
        .with_embed_dim(4)
        .with_bottom_dims(vec![6, 5])
        .with_tower_dims(vec![3]);
    assert_eq!(c.ple_experts(), (4, 4));
    let device = Device::flex();
    let m = c.init(Init::Seeded(1), &device);
    let lookalike_core::mtl::MtlNet::Ple(ple) = &m.net else {
        panic!("a PLE net")
    };
    assert_eq!(ple.levels.len(), 2);
    for (l, level) in ple.levels.iter().enumerate() {
        assert_eq!(level.task_experts.len(), 2);
        assert!(level.task_experts.iter().all(|e| e.len() == 4));
        assert_eq!(level.shared_experts.len(), 4);
        assert!(level.task_gates.iter().all(|g| g.weight.dims()[1] == 8));
        // The shared gate mixes every expert, and only below the last level.
        assert_eq!(
            level.shared_gate.as_ref().map(|g| g.weight.dims()[1]),
            (l == 0).then_some(12)
        );
    }
}

#[test]
fn aitms_label_constraint_adds_to_the_loss_only_when_asked() {
    let device = Device::flex();
    let t = table(64, 9);
    let rows: Vec<usize> = (0..64).collect();
    let x = MtlInputs::new(&t, &rows, &offsets(&SIZES), 2, &device);
    // An initialisation whose CTCVR exceeds its CTR on some rows (the constraint's case).
    let (seed, excess) = (1..50u64)
        .map(|seed| {
            let m = config(MtlModelKind::Aitm).init(Init::Seeded(seed), &device);
            let out = m.forward(&x);
            let (ctr, ctcvr) = (out.tasks[0].prob(), out.tasks[1].prob());
            let excess: f32 = burn::tensor::activation::relu(ctcvr - ctr)
                .mean()
                .into_scalar();
            (seed, excess)
        })
        .find(|&(_, e)| e > 1e-3)
        .expect("an initialisation with some excess");
    let with = config(MtlModelKind::Aitm).init(Init::Seeded(seed), &device);
    let without = config(MtlModelKind::Aitm)
        .with_aitm_calibration(0.0)
        .init(Init::Seeded(seed), &device);
    let (a, b): (f32, f32) = (with.loss(&x).into_scalar(), without.loss(&x).into_scalar());
    assert!((a - b - 0.6 * excess).abs() < 1e-5, "{a} {b} {excess}");
}

#[test]
fn metaheac_keeps_no_fast_weights_and_meta_trains() {
    let _turn = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let (tr, va, te) = (table(3000, 1), table(800, 2), table(800, 3));
    let c = config(MtlModelKind::MetaHeac).with_inner_lr(5.0);
    // With the outer learning rate 0, θ must come out as it went in however far the inner step
    // moves the fast weights: adapted weights are never written back (MTReclib's stay on the model
    // and leak into evaluation).
    let still = MtlTrainConfig::new()
        .with_batch_size(256)
        .with_epochs(1)
        .with_lr(0.0)
        .with_weight_decay(0.0);
    let fit = train(&c, &still, &tr, &va, 7, &device, &mut |_| {}).unwrap();
    let fresh = c.init(Init::Seeded(7), &device);
    let weights = |m: &lookalike_core::mtl::MtlModel| -> Vec<f32> {
        let lookalike_core::mtl::MtlNet::MetaHeac(h) = &m.net else {
            panic!("a MetaHeac net")
        };
        let mut v = h
            .task_embedding
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        v.extend(
            h.embedding
                .table
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        v
    };
    assert_eq!(weights(&fit.model), weights(&fresh));
    // Meta-trained for real, in both adaptation scopes, it finds the planted signal.
    for scope in [AdaptScope::All, AdaptScope::TaskEmbedding] {
        let tc = MtlTrainConfig::new()
            .with_batch_size(256)
            .with_epochs(6)
            .with_lr(1e-2);
        let c = config(MtlModelKind::MetaHeac).with_adapt(scope);
        let fit = train(&c, &tc, &tr, &va, 7, &device, &mut |_| {}).unwrap();
        let scores = evaluate(&fit.model, &te, &SIZES, 512).unwrap();
        assert!(scores[0].auc.unwrap() > 0.7, "{scope:?} {scores:?}");
        assert!(scores[1].auc.unwrap() > 0.65, "{scope:?} {scores:?}");
    }
}

#[test]
fn the_batch_is_halved_until_an_epoch_has_enough_steps() {
    let tc = MtlTrainConfig::new();
    // MTReclib's 2048 where the data is large enough for 256 steps an epoch.
    assert_eq!(tc.batch_for(2048 * 256), 2048);
    assert_eq!(tc.batch_for(10_000_000), 2048);
    // The built-in demo's 72,000 training rows: 281 steps of 256.
    assert_eq!(tc.batch_for(72_000), 256);
    assert_eq!(tc.batch_for(2048 * 256 - 1), 1024);
    // Never below 64, never above the asked size.
    assert_eq!(tc.batch_for(1_000), 64);
    assert_eq!(tc.clone().with_batch_size(32).batch_for(1_000), 32);
    // Switched off: the batch as asked.
    assert_eq!(tc.with_min_steps_per_epoch(0).batch_for(72_000), 2048);
}
