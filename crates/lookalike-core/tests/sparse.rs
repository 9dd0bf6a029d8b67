//! Lazy (row-sparse) Adam on the embedding tables against burn's dense Adam.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use lookalike_core::data::{Batch, Campaign, Role, UserTable};
use lookalike_core::meta::{EmbeddingUpdate, MetaConfig, MetaGrad, MetaTrainer};
use lookalike_core::model::{Inputs, MetaHeac};
use lookalike_core::sparse::{AdamConstants, SparseEmbeddings};

mod common;
use common::*;

/// Every parameter's values, in module order.
fn flat(m: &MetaHeac) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn row(m: &MetaHeac, ad_field: usize, row: usize) -> Vec<f32> {
    let t = m.ad[ad_field].weight.val();
    let d = t.dims()[1];
    t.into_data().try_to_vec::<f32>().unwrap()[row * d..(row + 1) * d].to_vec()
}

/// 400 users and 3 training campaigns whose labels follow a feature.
fn world() -> (UserTable, Vec<Campaign>) {
    let u = users(400, 31);
    let camps = learnable_campaigns(&u, 3);
    assert!(camps.iter().all(|c| c.role == Role::Train));
    (u, camps)
}

/// Small meta-batches: `tasks` tasks of 64 + 64 rows, a large outer step.
fn small(tasks: usize) -> MetaConfig {
    MetaConfig::new()
        .with_task_count(tasks)
        .with_support_size(64)
        .with_query_size(64)
        .with_outer_lr(1e-2)
}

/// A trainer of the tiny model (seed 9) over `campaigns`, drawing with seed 3.
fn trainer<'a>(cfg: MetaConfig, u: &'a UserTable, campaigns: &[&'a Campaign]) -> MetaTrainer<'a> {
    let m = model(&config(&schema()), &Device::flex().autodiff(), 9);
    MetaTrainer::new(m, cfg, u, campaigns, 3)
}

/// Plain steps on one batch per ad, dense Adam on one copy and lazy Adam on the other.
#[test]
fn lazy_adam_is_dense_adam_on_touched_rows_and_leaves_the_rest() {
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(300, 1);
    let r = rows(300, 2);
    let lr = 1e-2;
    let mut dense = model(&config(&s), &device, 3);
    let mut lazy = dense.clone();
    let mut dense_optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut lazy_optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut sparse = SparseEmbeddings::of(&lazy, AdamConstants::with_epsilon(1e-8));
    let mut after = Vec::new();
    // Step 1 touches ad rows (1, 2), step 2 rows (1, 1): row 1 of the first ad field is touched by
    // both, row 2 of the second by the first only; every user row is touched by both.
    for ad in [[1u32, 2], [1, 1]] {
        let batch = Batch::gather(&u, &LENS, &ad, &r);
        let loss = dense.loss(&Inputs::new(&batch, &device));
        let g = GradientsParams::from_grads(loss.backward(), &dense);
        dense = dense_optim.step(lr, dense, g);

        let mut batches = vec![batch];
        let touched = sparse.compact(&mut batches);
        assert_eq!(touched.ids[4], vec![ad[0]], "the first ad field's rows");
        let work = sparse.model(&lazy, &touched);
        assert!(work.user_multi[0].weight.val().dims()[0] <= 9);
        let loss = work.loss(&Inputs::new(&batches[0], &device));
        let mut g = GradientsParams::from_grads(loss.backward(), &work);
        sparse.step(lr, &work, &touched, &mut g);
        lazy = lazy_optim.step(lr, lazy, g);
        after.push((dense.clone(), sparse.write_into(lazy.clone())));
    }
    let (d1, l1) = &after[0];
    let diff = max_diff(&flat(d1), &flat(l1));
    assert!(
        diff < 1e-6,
        "after the first step lazy and dense differ by {diff}"
    );

    let (d2, l2) = &after[1];
    // Touched by the second step (and the dense layers, the user tables): the same.
    let (fd, fl) = (flat(d2), flat(l2));
    let user_and_dense: Vec<usize> = (0..fd.len())
        .filter(|&i| i != 4 && i != 5) // the two ad tables
        .collect();
    let pick = |f: &[Vec<f32>]| -> Vec<Vec<f32>> {
        user_and_dense.iter().map(|&i| f[i].clone()).collect()
    };
    let diff = max_diff(&pick(&fd), &pick(&fl));
    assert!(diff < 1e-5, "touched parameters differ by {diff}");
    assert_eq!(row(d2, 0, 1).len(), 4);
    let diff = max_diff(&[row(d2, 0, 1)], &[row(l2, 0, 1)]);
    assert!(diff < 1e-6, "a row touched by both steps differs by {diff}");
    // Touched by the first step only: dense Adam moves it on its momentum, lazy Adam leaves it.
    assert_eq!(
        row(l2, 1, 2),
        row(l1, 1, 2),
        "lazy Adam moved an untouched row"
    );
    assert!(
        max_diff(&[row(d2, 1, 2)], &[row(d1, 1, 2)]) > 1e-4,
        "dense Adam kept the row (the test would not tell the two apart)"
    );
}

/// The trainer in every mode: one iteration with lazy updates gives the weights of one with dense
/// updates (Adam's first step moves only rows with a gradient), from the same seed.
#[test]
fn a_lazy_iteration_equals_a_dense_one_in_every_mode() {
    let (u, camps) = world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    for mode in [
        MetaGrad::FirstOrder,
        MetaGrad::SecondOrder,
        MetaGrad::None,
        MetaGrad::NoAdaptation,
    ] {
        let run = |update: EmbeddingUpdate| {
            let cfg = small(2)
                .with_meta_grad(mode)
                .with_embedding_update(update)
                .with_plain_batch(128);
            let mut t = trainer(cfg, &u, &refs);
            let stats = t.step();
            (stats.query_loss, stats.support_loss, flat(t.model()))
        };
        let (dq, ds, dw) = run(EmbeddingUpdate::Dense);
        let (lq, ls, lw) = run(EmbeddingUpdate::Lazy);
        assert!(
            (dq.is_nan() && lq.is_nan()) || (dq - lq).abs() < 1e-5,
            "{mode:?}: {dq} vs {lq}"
        );
        assert!((ds - ls).abs() < 1e-5, "{mode:?}: {ds} vs {ls}");
        let diff = max_diff(&dw, &lw);
        assert!(diff < 1e-5, "{mode:?}: weights differ by {diff}");
    }
}

/// A lazy trainer's state survives a checkpoint's round trip: restored, it continues exactly.
#[test]
fn lazy_state_restores_exactly() {
    let (u, camps) = world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let mut a = trainer(small(2), &u, &refs);
    for _ in 0..3 {
        a.step();
    }
    let (state, weights) = (a.state(), a.model().clone());
    let (optim, emb) = (a.optimizer_bytes().unwrap(), a.embedding_optimizer_bytes());
    assert!(emb.is_some());
    let mut b = trainer(small(2), &u, &refs);
    b.restore(&state, weights, &optim, emb.as_deref()).unwrap();
    for _ in 0..3 {
        a.step();
        b.step();
    }
    assert_eq!(flat(a.model()), flat(b.model()));
    // Without the tables' state, a lazy trainer refuses.
    let mut c = trainer(small(2), &u, &refs);
    let err = c
        .restore(&b.state(), b.model().clone(), &optim, None)
        .unwrap_err();
    assert!(err.contains("lazy"), "{err}");
}

/// Tasks spread over threads give the weights of tasks taken one by one (each task's gradient is its
/// own graph, summed in task order).
#[test]
fn the_thread_count_does_not_change_the_result() {
    let (u, camps) = world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    for mode in [
        MetaGrad::FirstOrder,
        MetaGrad::SecondOrder,
        MetaGrad::NoAdaptation,
    ] {
        for update in [EmbeddingUpdate::Lazy, EmbeddingUpdate::Dense] {
            let run = |threads: usize| {
                let cfg = small(3)
                    .with_meta_grad(mode)
                    .with_embedding_update(update)
                    .with_threads(threads);
                let mut t = trainer(cfg, &u, &refs);
                for _ in 0..3 {
                    t.step();
                }
                flat(t.model())
            };
            // Two threads for three tasks: a first- or second-order step runs them as six halves.
            let one = run(1);
            assert_eq!(one, run(2), "{mode:?} {update:?}");
            assert_eq!(one, run(3), "{mode:?} {update:?}");
        }
    }
}

/// The tables' gradients of compact models of one task each (its own rows only), merged on the host,
/// are those of one compact model over the union of their rows summed over the tasks in task order,
/// bit for bit: the meta-step computes each task on its own rows.
#[test]
fn merged_task_gradients_are_the_union_models() {
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(300, 1);
    let general = model(&config(&s), &device, 3);
    let mut sparse = SparseEmbeddings::of(&general, AdamConstants::with_epsilon(1e-8));
    // Three tasks whose rows and ads overlap in part.
    let tasks: Vec<Batch> = [([1u32, 2], 1), ([2, 1], 2), ([1, 1], 3)]
        .iter()
        .map(|(ad, seed)| Batch::gather(&u, &LENS, ad, &rows(120, *seed)))
        .collect();
    let grads = |work: &MetaHeac, b: &Batch| {
        let loss = work.loss(&Inputs::new(b, &device));
        GradientsParams::from_grads(loss.backward(), work)
    };

    // One compact model over the union, each task's gradient on it, summed in task order.
    let mut union_batches = tasks.clone();
    let union_touched = sparse.compact(&mut union_batches);
    let union_work = sparse.model(&general, &union_touched);
    let mut summed: Option<Vec<Option<Vec<f32>>>> = None;
    for b in &union_batches {
        let mut g = grads(&union_work, b);
        let t = SparseEmbeddings::take_grads(&union_work, &mut g);
        let fields: Vec<Option<Vec<f32>>> = t.deep.into_iter().chain(t.wide).collect();
        summed = Some(match summed {
            None => fields,
            Some(acc) => acc
                .into_iter()
                .zip(fields)
                .map(|(a, f)| match (a, f) {
                    (Some(a), Some(f)) => Some(a.iter().zip(&f).map(|(x, y)| x + y).collect()),
                    (a, f) => a.or(f),
                })
                .collect(),
        });
    }

    // A compact model per task, merged.
    let parts: Vec<_> = tasks
        .iter()
        .map(|b| {
            let mut one = vec![b.clone()];
            let touched = sparse.compact(&mut one);
            let work = sparse.model(&general, &touched);
            let mut g = grads(&work, &one[0]);
            (touched, SparseEmbeddings::take_grads(&work, &mut g))
        })
        .collect();
    assert!(
        parts[0].0.ids.iter().map(Vec::len).sum::<usize>()
            < union_touched.ids.iter().map(Vec::len).sum::<usize>(),
        "a task's rows are fewer than the union's (the test would not tell the two apart)"
    );
    let (merged_touched, merged) = sparse.merge(parts);
    assert_eq!(
        merged_touched.ids, union_touched.ids,
        "the union's rows, in its order"
    );
    let merged: Vec<Option<Vec<f32>>> = merged.deep.into_iter().chain(merged.wide).collect();
    assert_eq!(Some(merged), summed);
}
