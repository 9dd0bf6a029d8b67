//! Model, meta-gradient and record checks on a tiny MetaHeac (CPU backend, seeded).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use lookalike_core::data::{Campaign, Role, UserTable};
use lookalike_core::grads;
use lookalike_core::meta::{MetaConfig, MetaGrad, MetaTrainer};
use lookalike_core::model::{CriticCombine, Init, Inputs, MetaHeac, MetaHeacConfig, bce};
use lookalike_core::record::{self, Precision, RecordHeader, TrainingInfo};
use lookalike_core::schema::Schema;

mod common;
use common::*;

#[test]
fn gates_are_distributions_and_output_is_a_probability() {
    let device = Device::flex();
    let s = schema();
    let u = users(40, 1);
    let r = rows(40, 2);
    for combine in [CriticCombine::Sum, CriticCombine::Mean] {
        let c = config(&s).with_critic_combine(combine);
        let m = model(&c, &device, 7);
        let out = m.forward(&inputs(&u, &[1, 2], &r, &device));
        for gate in [out.expert_gate.clone(), out.critic_gate.clone()] {
            for v in values(gate.sum_dim(1).reshape([40])) {
                assert!((v - 1.0).abs() < 1e-5, "gate weights sum to {v}");
            }
        }
        let upper = if combine == CriticCombine::Sum {
            1.0
        } else {
            0.5
        };
        for p in values(out.prob) {
            assert!(p > 0.0 && p <= upper, "prediction {p} outside (0, {upper}]");
        }
    }
    // Ablations: one expert / one critic get all the weight.
    let c = config(&s).with_num_experts(1).with_num_critics(1);
    let out = model(&c, &device, 7).forward(&inputs(&u, &[1, 2], &r, &device));
    assert!(
        values(out.expert_gate.reshape([40]))
            .iter()
            .all(|&g| (g - 1.0).abs() < 1e-6)
    );
    assert!(
        values(out.critic_gate.reshape([40]))
            .iter()
            .all(|&g| (g - 1.0).abs() < 1e-6)
    );
}

#[test]
fn the_experts_run_side_by_side_as_they_would_one_by_one() {
    use burn::tensor::{Distribution, Tensor};
    use lookalike_core::model::{experts_forward, experts_one_by_one};
    let device = Device::flex().autodiff();
    device.seed(13);
    let s = schema();
    for (experts, dims) in [
        (3, vec![6, 5]),
        (4, vec![7]),
        (2, vec![5, 4, 3]),
        (1, vec![6, 5]),
    ] {
        let m = model(
            &config(&s)
                .with_num_experts(experts)
                .with_expert_dims(dims.clone()),
            &device,
            11,
        );
        let x: Tensor<2> = Tensor::random(
            [9, m.experts[0].layers[0].weight.dims()[0]],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // Weighted sums, so a mix-up of experts or of their outputs' columns shows.
        let weights: Tensor<3> = Tensor::random(
            [9, experts, *dims.last().unwrap()],
            Distribution::Default,
            &device,
        );
        let one_by_one = experts_one_by_one(&m.experts, x.clone());
        let side_by_side = experts_forward(&m.experts, x.clone());
        assert_eq!(side_by_side.dims(), one_by_one.dims());
        let a = values(one_by_one.clone().flatten::<1>(0, 2));
        let b = values(side_by_side.clone().flatten::<1>(0, 2));
        for (u, v) in a.iter().zip(&b) {
            assert!(
                (u - v).abs() < 1e-5,
                "{experts} experts {dims:?}: {u} vs {v}"
            );
        }
        // The same gradients for every expert's weights and biases.
        let leaf = grads::releaf(m.clone());
        let g1 = GradientsParams::from_grads(
            (Tensor::stack::<3>(
                leaf.experts.iter().map(|e| e.forward(x.clone())).collect(),
                1,
            ) * weights.clone())
            .sum()
            .backward(),
            &leaf,
        );
        let g2 = GradientsParams::from_grads(
            (experts_forward(&leaf.experts, x.clone()) * weights)
                .sum()
                .backward(),
            &leaf,
        );
        let diff = grads::norm(&m, &grads::combine(&m, &[(1.0, &g1), (-1.0, &g2)]));
        let size = grads::norm(&m, &g1);
        assert!(
            size > 0.0 && diff < 1e-5 * size.max(1.0),
            "{experts} experts {dims:?}: gradients differ by {diff} (norm {size})"
        );
    }
}

#[test]
fn padding_slots_do_not_matter_and_seeds_reproduce() {
    let device = Device::flex();
    let s = schema();
    let c = config(&s);
    let m = model(&c, &device, 3);
    let u = users(30, 4);
    let r = rows(30, 5);
    let base = values(m.forward(&inputs(&u, &[1, 1], &r, &device)).prob);
    // Write junk ids into padding slots: masked means ignore them.
    let mut junk = u.clone();
    for user in 0..junk.len() {
        let mut off = 0;
        for (f, &max) in LENS.iter().enumerate() {
            let len = junk.lens[user * 2 + f] as usize;
            for p in len..max {
                junk.multi[user * junk.multi_width + off + p] = 1;
            }
            off += max;
        }
    }
    assert_eq!(
        base,
        values(m.forward(&inputs(&junk, &[1, 1], &r, &device)).prob)
    );
    // Same seed, same model; another seed, another model.
    assert_eq!(
        base,
        values(
            model(&c, &device, 3)
                .forward(&inputs(&u, &[1, 1], &r, &device))
                .prob
        )
    );
    assert_ne!(
        base,
        values(
            model(&c, &device, 4)
                .forward(&inputs(&u, &[1, 1], &r, &device))
                .prob
        )
    );
}

/// <a, b> over a model's parameters, from norms: (|a+b|² − |a−b|²) / 4.
fn dot(m: &MetaHeac, a: &GradientsParams, b: &GradientsParams) -> f64 {
    let plus = grads::norm(m, &grads::combine(m, &[(1.0, a), (1.0, b)]));
    let minus = grads::norm(m, &grads::combine(m, &[(1.0, a), (-1.0, b)]));
    (plus * plus - minus * minus) / 4.0
}

/// A unit direction in parameter space: the normalised loss gradient on random labels.
fn direction(m: &MetaHeac, u: &UserTable, device: &Device, seed: u64) -> GradientsParams {
    let x = inputs(u, &[2, 2], &rows(u.len(), seed), device);
    let leaf = grads::releaf(m.clone());
    let g = GradientsParams::from_grads(leaf.loss(&x).backward(), &leaf);
    let n = grads::norm(m, &g) as f32;
    grads::combine(m, &[(1.0 / n, &g)])
}

/// The meta-objective F(θ) = L_Q(θ − α ∇L_S(θ)) for one task.
fn meta_objective(m: &MetaHeac, support: &Inputs, query: &Inputs, alpha: f32) -> f64 {
    let leaf = grads::releaf(m.clone());
    let g = GradientsParams::from_grads(leaf.loss(support).backward(), &leaf);
    let adapted = grads::shift(m.clone(), &g, -alpha, true);
    adapted.loss(query).into_scalar::<f32>() as f64
}

#[test]
fn second_order_meta_gradient_matches_finite_differences() {
    let device = Device::flex().autodiff();
    let s = schema();
    let c = config(&s);
    let u = users(64, 11);
    let all = rows(64, 12);
    let campaign = Campaign {
        aid: "1".into(),
        ad: vec![1, 2],
        role: Role::Train,
        stage1: all.clone(),
        stage2: Vec::new(),
    };
    let alpha = 0.5f32; // large, so the Hessian term is far from negligible
    let m = model(&c, &device, 21);
    let (support, query) = (
        inputs(&u, &campaign.ad, &all[..32], &device),
        inputs(&u, &campaign.ad, &all[32..], &device),
    );
    let mut cfg = MetaConfig::new()
        .with_inner_lr(alpha as f64)
        .with_meta_grad(MetaGrad::SecondOrder);
    cfg.hvp_step = 1e-3;
    let mut trainer = MetaTrainer::new(m.clone(), cfg, &u, &[&campaign], 1);
    let (so, _, _) = trainer.exact_task_gradient(&support, &query);

    // First-order: the query gradient at θ' (what the fast-weights backward gives).
    let leaf = grads::releaf(m.clone());
    let g = GradientsParams::from_grads(leaf.loss(&support).backward(), &leaf);
    let fast = grads::shift(m.clone(), &g, -alpha, false);
    let fo = GradientsParams::from_grads(fast.loss(&query).backward(), &m);

    let (mut err_so, mut err_fo, mut scale) = (0.0f64, 0.0f64, 0.0f64);
    for seed in [101, 202, 303] {
        let d = direction(&m, &u, &device, seed);
        let h = 1e-2f32;
        let f_plus = meta_objective(
            &grads::shift(m.clone(), &d, h, true),
            &support,
            &query,
            alpha,
        );
        let f_minus = meta_objective(
            &grads::shift(m.clone(), &d, -h, true),
            &support,
            &query,
            alpha,
        );
        let numeric = (f_plus - f_minus) / (2.0 * h as f64);
        err_so = err_so.max((dot(&m, &so, &d) - numeric).abs());
        err_fo = err_fo.max((dot(&m, &fo, &d) - numeric).abs());
        scale = scale.max(numeric.abs());
    }
    eprintln!(
        "directional derivative scale {scale:.3e}: |SO − FD| {err_so:.3e}, |FO − FD| {err_fo:.3e}"
    );
    assert!(
        err_fo > 20.0 * err_so,
        "second order must be much closer than first order"
    );
    assert!(
        err_so < 0.02 * scale.max(1e-3),
        "second-order error {err_so} too large"
    );
}

#[test]
fn first_order_step_with_tiny_inner_lr_is_the_query_gradient() {
    let device = Device::flex().autodiff();
    let s = schema();
    let m = model(&config(&s), &device, 5);
    let u = users(32, 6);
    let r = rows(32, 7);
    let x = inputs(&u, &[1, 1], &r, &device);
    let leaf = grads::releaf(m.clone());
    let g = GradientsParams::from_grads(leaf.loss(&x).backward(), &leaf);
    // θ' = θ − 0·g: the backward through the fast weights reaches θ unchanged.
    let fast = grads::shift(m.clone(), &g, 0.0, false);
    let through = GradientsParams::from_grads(fast.loss(&x).backward(), &m);
    let diff = grads::norm(&m, &grads::combine(&m, &[(1.0, &through), (-1.0, &g)]));
    assert!(
        diff < 1e-6,
        "gradient through fast weights differs by {diff}"
    );
    assert!(grads::norm(&m, &g) > 1e-3);
}

#[test]
fn meta_training_reduces_query_loss() {
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(400, 31);
    let camps = learnable_campaigns(&u, 3);
    let refs: Vec<&Campaign> = camps.iter().collect();
    for mode in [
        MetaGrad::FirstOrder,
        MetaGrad::SecondOrder,
        MetaGrad::None,
        MetaGrad::NoAdaptation,
    ] {
        let cfg = MetaConfig::new()
            .with_meta_grad(mode)
            .with_task_count(2)
            .with_support_size(64)
            .with_query_size(64)
            .with_outer_lr(1e-2)
            .with_plain_batch(128);
        let mut t = MetaTrainer::new(model(&config(&s), &device, 9), cfg, &u, &refs, 3);
        let loss = |s: lookalike_core::meta::StepStats| {
            if s.query_loss.is_nan() {
                s.support_loss
            } else {
                s.query_loss
            }
        };
        let first: f32 = (0..3).map(|_| loss(t.step())).sum::<f32>() / 3.0;
        for _ in 0..40 {
            t.step();
        }
        let last: f32 = (0..3).map(|_| loss(t.step())).sum::<f32>() / 3.0;
        assert!(last < first * 0.8, "{mode:?}: loss {first} → {last}");
    }
}

fn header(s: &Schema, c: &MetaHeacConfig, precision: Precision) -> RecordHeader {
    RecordHeader {
        model: c.clone(),
        schema: s.clone(),
        precision,
        training: TrainingInfo::default(),
        parameters: 0,
        campaign: None,
        library: None,
    }
}

#[test]
fn record_round_trips() {
    let device = Device::flex();
    let s = schema();
    let c = config(&s);
    let m = model(&c, &device, 17);
    let u = users(50, 18);
    let r = rows(50, 19);
    let x = inputs(&u, &[2, 1], &r, &device);
    let want = values(m.forward(&x).prob);

    let bytes = record::to_bytes(&m, &header(&s, &c, Precision::F32)).unwrap();
    let (h, back) = record::from_bytes(&bytes, &device).unwrap();
    assert_eq!(h.schema, s);
    assert_eq!(
        values(back.forward(&x).prob),
        want,
        "f32 round trip must be exact"
    );

    let half = record::to_bytes(&m, &header(&s, &c, Precision::F16)).unwrap();
    // At the default layer sizes the weights halve (tiny tensors are dominated by names and alignment).
    let big_c = MetaHeacConfig::for_schema(&s);
    let big = big_c.init(Init::Seeded(1), &device);
    let weights = |p| {
        record::read_header(&record::to_bytes(&big, &header(&s, &big_c, p)).unwrap())
            .unwrap()
            .1
            .len()
    };
    let (w32, w16) = (weights(Precision::F32), weights(Precision::F16));
    assert!(
        (w16 as f64) < 0.55 * w32 as f64,
        "f16 weights {w16} B vs f32 {w32} B"
    );
    let (_, back) = record::from_bytes(&half, &device).unwrap();
    for (a, b) in values(back.forward(&x).prob).iter().zip(&want) {
        assert!((a - b).abs() < 5e-3, "f16 prediction {a} vs {b}");
    }

    assert!(matches!(
        record::from_bytes(b"junk", &device),
        Err(record::RecordError::BadMagic)
    ));
    assert!(matches!(
        record::from_bytes(&bytes[..bytes.len() - 10], &device),
        Err(record::RecordError::Truncated(_))
    ));
    let mut other = bytes.clone();
    other[8] = 9;
    assert!(matches!(
        record::from_bytes(&other, &device),
        Err(record::RecordError::Version(9))
    ));
}

/// The wgpu path (Mesa's lavapipe in CI: `wgpu-cpu`) agrees with the CPU backend on the forward pass and on
/// a few meta-training steps.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_agrees_with_flex() {
    use burn::module::Module;
    use lookalike_core::backend::BackendKind;
    let gpu = BackendKind::WgpuCpu.device().unwrap();
    let cpu = Device::flex();
    let s = schema();
    let c = config(&s);
    let u = users(64, 41);
    let r = rows(64, 42);
    let on = |device: &Device| {
        let m = model(&c, &device.clone().autodiff(), 43);
        let p0 = values(m.valid().forward(&inputs(&u, &[1, 2], &r, device)).prob);
        let camp = Campaign {
            aid: "1".into(),
            ad: vec![1, 2],
            role: Role::Train,
            stage1: r.clone(),
            stage2: Vec::new(),
        };
        let cfg = MetaConfig::new()
            .with_support_size(32)
            .with_query_size(32)
            .with_outer_lr(1e-2);
        let mut t = MetaTrainer::new(m, cfg, &u, &[&camp], 44);
        let losses: Vec<f32> = (0..3).map(|_| t.step().query_loss).collect();
        let p1 = values(
            t.model()
                .valid()
                .forward(&inputs(&u, &[1, 2], &r, device))
                .prob,
        );
        (p0, losses, p1)
    };
    let (a0, al, a1) = on(&cpu);
    let (b0, bl, b1) = on(&gpu);
    let close = |x: &[f32], y: &[f32], tol: f32| x.iter().zip(y).all(|(a, b)| (a - b).abs() <= tol);
    assert!(close(&a0, &b0, 1e-5), "forward: {a0:?} vs {b0:?}");
    assert!(close(&al, &bl, 1e-4), "losses: {al:?} vs {bl:?}");
    assert!(close(&a1, &b1, 1e-3), "after training: {a1:?} vs {b1:?}");
}

/// Saturated critics: σ(z) rounds to exactly 1 (or 0) in f32, where log(1 − ŷ) of probabilities is −∞
/// and its gradient 0·∞ = NaN. The loss from logits stays finite, with a finite gradient.
#[test]
fn loss_has_a_finite_gradient_at_p_zero_and_one() {
    use burn::module::Param;
    use burn::tensor::Tensor;
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(16, 3);
    for (bias, label) in [(200.0f32, false), (-200.0, true)] {
        for combine in [CriticCombine::Sum, CriticCombine::Mean] {
            let mut m = model(&config(&s).with_critic_combine(combine), &device, 5);
            for c in &mut m.critics {
                c.bias = Some(Param::from_tensor(Tensor::full([1], bias, &device)));
            }
            let r: Vec<_> = (0..16)
                .map(|i| lookalike_core::data::Row { user: i, label })
                .collect();
            let x = inputs(&u, &[1, 2], &r, &device);
            let out = m.forward(&x);
            let p = values(out.prob.clone());
            assert!(
                p.iter()
                    .all(|&v| v == if label { 0.0 } else { 1.0 } || combine == CriticCombine::Mean),
                "{p:?}"
            );
            let loss = bce(&out, x.labels.clone());
            let v = loss.clone().into_scalar::<f32>();
            // Under `mean`, ŷ ≤ 1/m, so only σ → 0 saturates the output.
            let saturated = label || combine == CriticCombine::Sum;
            assert!(
                v.is_finite() && (!saturated || v > 50.0),
                "{combine:?} loss {v}"
            );
            let g = loss.backward();
            for w in [
                m.critics[0].weight.val().grad(&g).unwrap(),
                m.experts[0].layers[0].weight.val().grad(&g).unwrap(),
            ] {
                let w = w.into_data().try_to_vec::<f32>().unwrap();
                assert!(
                    w.iter().all(|x| x.is_finite()),
                    "{combine:?}: non-finite gradient"
                );
            }
            let e = m.user_single[0].weight.val().grad(&g).unwrap();
            let e = e.into_data().try_to_vec::<f32>().unwrap();
            assert!(e.iter().all(|x| x.is_finite()));
        }
    }
}

/// A NaN weight (as a diverged step leaves) stops fine-tuning and meta-training with a clear error.
#[test]
fn a_nan_in_training_stops_with_a_clear_error() {
    use burn::module::Param;
    use burn::tensor::Tensor;
    use lookalike_core::finetune::{FineTuneConfig, FineTuner};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(64, 8);
    let r = rows(64, 9);
    let poisoned = || {
        let mut m = model(&config(&s), &device, 2);
        let n = m.critics[0].weight.val().dims();
        m.critics[0].weight = Param::from_tensor(Tensor::full(n, f32::NAN, &device));
        m
    };
    let mut ft = FineTuner::new(poisoned(), FineTuneConfig::reference(), &u, &[1, 2], &r, 1);
    let e = ft.step().unwrap_err().to_string();
    assert!(
        e.contains("fine-tuning loss at step 1") && e.contains("NaN"),
        "{e}"
    );
    // With a hold-out, the check of the general model comes first.
    let mut ft = FineTuner::new(poisoned(), FineTuneConfig::new(), &u, &[1, 2], &r, 1);
    let e = ft.step().unwrap_err().to_string();
    assert!(e.contains("held-out loss") && e.contains("NaN"), "{e}");

    let camps = learnable_campaigns(&u, 3);
    let refs: Vec<&Campaign> = camps.iter().collect();
    let cfg = MetaConfig::new().with_support_size(16).with_query_size(16);
    let mut t = MetaTrainer::new(poisoned(), cfg, &u, &refs, 3);
    let e = lookalike_core::schedule::fit(&mut t, None, Some(3), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("training loss at iteration 1"), "{e}");
}

/// Early stopping keeps the best held-out weights and stops within its bounds.
#[test]
fn fine_tuning_stops_on_the_held_out_loss() {
    use lookalike_core::finetune::{FineTuneConfig, FineTuner};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(300, 8);
    let camps = learnable_campaigns(&u, 1);
    let cfg = FineTuneConfig::new()
        .with_batch(32)
        .with_epochs(50)
        .with_patience(2)
        .with_check_every(5)
        .with_max_steps(400)
        .with_refit(false);
    let mut ft = FineTuner::new(
        model(&config(&s), &device, 4),
        cfg,
        &u,
        &[1, 2],
        &camps[0].stage1,
        6,
    );
    let held = ft.holdout().len();
    assert!(
        (55..=65).contains(&held),
        "20 % of 300 rows held out, stratified: {held}"
    );
    while ft.step().unwrap().is_some() {}
    assert!(ft.step <= 400);
    let checks: Vec<f32> = ft.curve.iter().filter_map(|p| p.holdout_loss).collect();
    let best = checks.iter().cloned().fold(f32::INFINITY, f32::min);
    assert!(
        best < checks[0],
        "fine-tuning lowered the held-out loss: {checks:?}"
    );
    let holdout = ft.holdout().to_vec();
    let kept = ft.into_model().unwrap();
    let again = lookalike_core::finetune::mean_loss(&kept, &u, &[1, 2], &holdout, 4096);
    assert!(
        (again - best).abs() < 1e-5,
        "the best weights are kept: {again} vs {best}"
    );
}

/// Select, then refit: once the held-out rows have chosen the wide part's strength and the number of
/// steps, the model returned is a fresh run from the general model on every row (held-out ones
/// included) with that strength and that many steps.
#[test]
fn the_refit_reruns_the_chosen_fit_on_every_row() {
    use lookalike_core::finetune::{FineTuneConfig, FineTuner, predict};
    let t = tuning();
    let (u, rows, ad, general) = (&t.users, &t.rows, t.ad, t.general);
    let cfg = FineTuneConfig::new()
        .with_batch(32)
        .with_epochs(50)
        .with_patience(2)
        .with_check_every(5)
        .with_max_steps(60);
    assert!(cfg.refit);
    let mut ft = FineTuner::new(general.clone(), cfg.clone(), u, &ad, rows, 6);
    let c = ft
        .wide_c()
        .expect("the tokens carry the label: a wide fit is chosen");
    while ft.step().unwrap().is_some() {}
    let checks: Vec<(usize, f32)> = ft
        .curve
        .iter()
        .filter_map(|p| p.holdout_loss.map(|l| (p.step, l)))
        .collect();
    // The first of the lowest, as the rule keeps it.
    let (steps, _) = checks
        .iter()
        .copied()
        .reduce(|a, b| if b.1 < a.1 * (1.0 - 1e-4) { b } else { a })
        .unwrap();
    assert!(steps > 0, "some steps helped: {checks:?}");
    let refit = ft.into_model().unwrap();

    let by_hand = FineTuneConfig::new()
        .with_batch(32)
        .with_holdout(0.0)
        .with_wide_c(vec![c])
        .with_epochs(steps)
        .with_max_steps(steps)
        .with_refit(false);
    let mut again = FineTuner::new(general, by_hand, u, &ad, rows, 7);
    assert_eq!(again.wide_c(), Some(c));
    while again.step().unwrap().is_some() {}
    assert_eq!(again.step, steps);
    let want = again.into_model().unwrap();
    assert_eq!(
        predict(&refit, u, &ad, rows, 64),
        predict(&want, u, &ad, rows, 64)
    );
}

/// With a wide part, cross-validation on the training rows chooses to fit it where the user tokens
/// carry the label, and the fit alone makes the campaign separable; the traced run (Fig. 3's curves)
/// is the run `tune_and_score` makes, with the candidates' AUC at the start and at every check.
#[test]
fn wide_part_is_chosen_by_cross_validation_and_traced() {
    use lookalike_core::finetune::{FineTuneConfig, FineTuner, predict, trace, tune_and_score};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(300, 8);
    let camps = learnable_campaigns(&u, 1);
    let rows = &camps[0].stage1;
    let cfg = FineTuneConfig::new()
        .with_batch(32)
        .with_epochs(3)
        .with_check_every(5)
        .with_wide_folds(5);
    let general = model(&config(&s), &device, 4);
    let ft = FineTuner::new(general.clone(), cfg.clone(), &u, &[1, 2], rows, 6);
    assert!(
        ft.wide_c().is_some(),
        "age decides the label: the fit is chosen"
    );
    let labels: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let auc =
        |m| lookalike_core::metrics::auc(&labels, &predict(m, &u, &[1, 2], rows, 64)).unwrap();
    assert!(
        auc(ft.model()) > 0.99,
        "the fit separates: {}",
        auc(ft.model())
    );
    assert!(auc(&general) < 0.9, "the random general model does not");

    let (_, curve) = tune_and_score(general.clone(), &cfg, &u, &[1, 2], rows, rows, 6).unwrap();
    let traced = trace(general, &cfg, &u, &[1, 2], rows, rows, 6).unwrap();
    assert_eq!(curve.len(), traced.len());
    for (c, t) in curve.iter().zip(&traced) {
        assert_eq!(c.step, t.step);
        assert!(c.loss == t.loss || (c.loss.is_nan() && t.loss.is_nan()));
        assert_eq!(c.holdout_loss, t.holdout_loss);
        assert_eq!(
            t.auc.is_some(),
            t.step == 0 || t.holdout_loss.is_some() || t.step % 5 == 0
        );
    }
    assert!(traced[0].auc.unwrap() > 0.99);
}

/// Where the general model ranks the seeds below the non-seeds, the free wide fit turns it upside down
/// (a negative coefficient on the critic mixture's logit), and with sampled non-seeds the coefficient
/// stops at 0 (the tokens alone).
#[test]
fn the_offset_coefficient_is_held_at_zero_for_sampled_negatives() {
    use lookalike_core::data::Row;
    use lookalike_core::finetune::{FineTuneConfig, FineTuner, predict};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(400, 8);
    let general = model(&config(&s), &device, 4);
    let ad = [1u32, 2];
    let all: Vec<Row> = (0..400)
        .map(|i| Row {
            user: i,
            label: false,
        })
        .collect();
    let scores = predict(&general, &u, &ad, &all, 64);
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[200];
    // Seeds are the users the general model likes least.
    let rows: Vec<Row> = all
        .iter()
        .zip(&scores)
        .map(|(r, &p)| Row {
            label: p < median,
            ..*r
        })
        .collect();
    let scale = |m: &MetaHeac| -> f32 { m.wide_scale.as_ref().unwrap().val().into_scalar() };
    assert_eq!(scale(&general), 1.0);
    let free = FineTuner::new(general.clone(), FineTuneConfig::new(), &u, &ad, &rows, 6);
    assert!(free.wide_c().is_some());
    assert!(
        scale(free.model()) < 0.0,
        "a negative coefficient: {}",
        scale(free.model())
    );
    let held = FineTuner::new(
        general,
        FineTuneConfig::new().sampled_negatives(),
        &u,
        &ad,
        &rows,
        6,
    );
    assert!(held.wide_c().is_some());
    assert_eq!(scale(held.model()), 0.0, "coefficient 0");
}

/// The fitted wide part is the regression it fitted: on every row the model's logit after the fit is
/// the L2 logistic regression's, a · (the general model's logit) + w · (the user's tokens), though the
/// general model mixes two critics (the critic mixture is one logit under the wide part, so its
/// coefficient is exact) and some users list a token twice (the wide part counts it once, as the
/// one-hot regression does).
#[test]
fn the_wide_fit_is_exact_under_a_critic_mixture() {
    use lookalike_core::finetune::{FineTuneConfig, FineTuner, predict};
    use lookalike_core::lr::{Lr, LrConfig, OneHot};
    let t = tuning();
    let (u, rows, ad, general) = (&t.users, &t.rows, t.ad, t.general);
    let c = config(&schema());
    assert!(c.num_critics > 1 && c.wide);
    let logit = |p: f32| {
        let p = (p as f64).clamp(1e-6, 1.0 - 1e-6);
        (p / (1.0 - p)).ln()
    };
    let offset: Vec<f64> = predict(&general, u, &ad, rows, 64)
        .into_iter()
        .map(logit)
        .collect();
    let onehot = OneHot::new(&c.tables, &c.multi_lens);
    let x: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| onehot.columns(u, r.user as usize))
        .collect();
    let y: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let cfg = LrConfig {
        c: 1.0,
        fit_offset_scale: true,
        ..LrConfig::default()
    };
    let fit = Lr::fit_with_offset(&x, &y, Some(&offset), onehot.dim, &cfg);
    assert!(
        (fit.offset_scale - 1.0).abs() > 0.1,
        "a coefficient other than 1, so that exactness is tested: {}",
        fit.offset_scale
    );
    // No hold-out: the first (only) strength is fitted.
    let ft = FineTuner::new(
        general,
        FineTuneConfig::new()
            .with_holdout(0.0)
            .with_wide_c(vec![1.0]),
        u,
        &ad,
        rows,
        6,
    );
    assert_eq!(ft.wide_c(), Some(1.0));
    let after = predict(ft.model(), u, &ad, rows, 64);
    let repeats = rows
        .iter()
        .zip(&x)
        .filter(|(r, cols)| {
            u.single_of(r.user as usize).len()
                + u.multi_tokens(r.user as usize, &c.multi_lens).count()
                > cols.len()
        })
        .count();
    assert!(
        repeats > 0,
        "some users list a token twice, counted once by both"
    );
    for ((p, o), cols) in after.iter().zip(&offset).zip(&x) {
        let want = fit.offset_scale * o + fit.logit(cols);
        assert!(
            (logit(*p) - want).abs() < 1e-3 * (1.0 + want.abs()),
            "model {} vs regression {want}",
            logit(*p)
        );
    }
}

/// Rows no training row touches take the learned unknown row (single-valued and ad tables) or zero
/// (multi-valued tables); touched rows are unchanged.
#[test]
fn unseen_ids_get_the_learned_unknown_row() {
    use lookalike_core::unknown::{Seen, fill_unseen};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(40, 12);
    // One campaign over the first 10 users, with ad ids (1, 1): every other ad id is unseen.
    let camp = Campaign {
        aid: "a".into(),
        ad: vec![1, 1],
        role: Role::Train,
        stage1: rows(10, 3),
        stage2: Vec::new(),
    };
    let m = model(&config(&s), &device, 4);
    let seen = Seen::of(&m, &u, &[&camp]);
    assert!(seen.ad[0][1] && !seen.ad[0][2] && !seen.ad[0][3]);
    assert!(seen.unseen() > 0);
    let rows_of = |e: &burn::nn::Embedding| -> Vec<Vec<f32>> {
        let w = e.weight.val();
        let d = w.dims()[1];
        values(w.flatten::<1>(0, 1))
            .chunks(d)
            .map(|c| c.to_vec())
            .collect()
    };
    let before = rows_of(&m.ad[0]);
    let filled = fill_unseen(m.clone(), &seen);
    let after = rows_of(&filled.ad[0]);
    assert_eq!(after[1], before[1], "a seen row is kept");
    assert_eq!(after[2], before[0], "an unseen ad id takes the unknown row");
    assert_eq!(after[3], before[0]);
    for (f, table) in filled.user_multi.iter().enumerate() {
        for (id, row) in rows_of(table).iter().enumerate().skip(1) {
            if !seen.multi[f][id] {
                assert!(
                    row.iter().all(|&x| x == 0.0),
                    "unseen token {id} of field {f} is zero"
                );
            }
        }
    }
    for (f, table) in filled.user_single.iter().enumerate() {
        let (b, a) = (rows_of(&m.user_single[f]), rows_of(table));
        for id in 1..a.len() {
            assert_eq!(
                a[id],
                if seen.single[f][id] {
                    b[id].clone()
                } else {
                    b[0].clone()
                }
            );
        }
    }
    // Still a trainable model: the filled weights take gradients.
    let x = inputs(&u, &[2, 2], &rows(40, 5), &device);
    let g = filled.loss(&x).backward();
    assert!(filled.ad[0].weight.val().grad(&g).is_some());
}

/// A record written before the config gained `wide`, `embed_init_std`, `multi_lens` and the schedule
/// fields still loads, with the values it was trained with (no wide part, the reference schedule).
#[test]
fn records_from_before_the_new_config_fields_load() {
    let device = Device::flex();
    let s = schema();
    let c = config(&s).with_wide(false);
    let m = model(&c, &device, 21);
    let mut h = header(&s, &c, Precision::F32);
    h.training.meta = Some(MetaConfig::new());
    let bytes = record::to_bytes(&m, &h).unwrap();
    // Layout: magic (8), version (4), header length (8), header JSON, then the weights section.
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut json: serde_json::Value = serde_json::from_slice(&bytes[20..20 + len]).unwrap();
    for key in ["wide", "embed_init_std", "multi_lens"] {
        json["model"].as_object_mut().unwrap().remove(key).unwrap();
    }
    for key in [
        "id_dropout",
        "val_fraction",
        "val_every",
        "val_patience",
        "val_min_passes",
        "max_iterations",
        "val_max_rows",
        "val_max_steps",
    ] {
        json["training"]["meta"]
            .as_object_mut()
            .unwrap()
            .remove(key)
            .unwrap();
    }
    let old_json = serde_json::to_vec(&json).unwrap();
    // Written by format version 1.
    let mut old = bytes[..8].to_vec();
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(&(old_json.len() as u64).to_le_bytes());
    old.extend_from_slice(&old_json);
    old.extend_from_slice(&bytes[20 + len..]);

    let (h, back) = record::from_bytes(&old, &device).unwrap();
    assert!(!h.model.wide && h.model.embed_init_std == 1.0);
    assert_eq!(h.model.multi_lens, s.multi_lens());
    let meta = h.training.meta.unwrap();
    assert_eq!((meta.val_fraction, meta.id_dropout), (0.0, 0.0));
    let x = inputs(&users(20, 22), &[1, 2], &rows(20, 23), &device);
    assert_eq!(values(back.forward(&x).prob), values(m.forward(&x).prob));

    // Version 1 placed the wide part on every critic: such a record is refused, not misread.
    let c = config(&s);
    let bytes = record::to_bytes(&model(&c, &device, 21), &header(&s, &c, Precision::F32)).unwrap();
    let mut old = bytes.clone();
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        record::from_bytes(&old, &device),
        Err(record::RecordError::OldWide)
    ));
}

/// With `online_select`, the validation campaigns try every online recipe that applies to the model,
/// keep the one with the highest mean AUC (the configuration as given on a tie), leave the weights
/// alone, and the record carries the choice.
#[test]
fn validation_chooses_the_online_recipe() {
    use lookalike_core::finetune::OnlineRecipe;
    use lookalike_core::schedule::{self, Setup, mean_of};
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let meta = choosing_meta();
    for wide in [true, false] {
        let c = config(&s).with_wide(wide);
        let Setup {
            mut trainer,
            validation,
            ..
        } = schedule::setup(model(&c, &device, 4), meta.clone(), &finetune, &u, &refs, 5);
        assert!(!validation.is_empty());
        let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
        let choice = report.online.clone().expect("a recipe is chosen");
        let tried: Vec<OnlineRecipe> = choice.tried.iter().map(|t| t.0).collect();
        if wide {
            assert_eq!(tried, OnlineRecipe::ALL);
            // Without the average among them, the single runs only, with the same AUCs.
            let (single, _) =
                schedule::choose_online(&validation, trainer.model(), None, false, 0.0).unwrap();
            let n = OnlineRecipe::ALL.len() - 1;
            assert_eq!(single.tried, choice.tried[..n]);
            assert_eq!(single.recipe, choice.applied(false));
        } else {
            // Every other recipe is about the wide part.
            assert_eq!(tried, [OnlineRecipe::AsConfigured]);
        }
        assert_eq!(Some(choice.tried[0].1), report.best_auc);
        // Each AUC is the validation's for that recipe, on the kept weights.
        for &(recipe, auc) in &choice.tried {
            let again = validation
                .aucs_as(trainer.model(), &recipe.apply(finetune.clone()))
                .unwrap();
            assert_eq!(mean_of(&again), auc, "{recipe:?}");
        }
        let best = choice.tried.iter().map(|t| t.1).fold(f64::MIN, f64::max);
        let first_best = choice.tried.iter().find(|t| t.1 == best).unwrap().0;
        assert_eq!(choice.recipe, first_best);
        // Each recipe's per-campaign AUCs are kept, so another margin can be applied later.
        assert_eq!(choice.aucs.len(), choice.tried.len());
        for (a, t) in choice.aucs.iter().zip(&choice.tried) {
            assert_eq!(mean_of(a), t.1);
        }
        assert_eq!(choice.with_margin(0.0), choice.recipe);
        let default = if wide {
            OnlineRecipe::Averaged
        } else {
            OnlineRecipe::AsConfigured
        };
        assert_eq!(choice.with_margin(1e9), default);
        // The kept weights' AUC on each campaign as deployed: what choosing the number of experts
        // pairs, kept so that it need not fine-tune again.
        assert_eq!(report.aucs.len(), validation.len());
        assert_eq!(
            report.aucs,
            validation
                .aucs_as(trainer.model(), &choice.recipe.apply(finetune.clone()))
                .unwrap()
        );
        // The kept weights are the best validation's: choosing changed nothing.
        assert_eq!(
            Some(validation.mean_auc(trainer.model()).unwrap()),
            report.best_auc
        );

        let mut h = header(&s, &c, Precision::F32);
        h.training.online = report.online.clone();
        let bytes = record::to_bytes(trainer.model(), &h).unwrap();
        let (back, _) = record::read_header(&bytes).unwrap();
        assert_eq!(back.training.online, report.online);
        assert_eq!(back.training.online_recipe(true), choice.recipe);
        assert_eq!(back.training.online_recipe(false), choice.applied(false));
    }
    // A record without a choice fine-tunes as configured.
    for averaging in [true, false] {
        assert_eq!(
            TrainingInfo::default().online_recipe(averaging),
            OnlineRecipe::AsConfigured
        );
    }
}

/// The validation campaigns are fine-tuned with the chosen recipe with and without the prior of the
/// campaigns most like each, from the library a record would carry (every training campaign's LR and
/// its k) leaving the campaign itself out, on the same seeds; the prior is taken where its lead
/// clears the margin (`Choose`), and never without a wide part.
#[test]
fn validation_chooses_whether_to_take_the_similar_campaigns_prior() {
    use lookalike_core::lr::{LrConfig, OneHot};
    use lookalike_core::meta::SimilarRule::{Always, Choose, Never};
    use lookalike_core::schedule::{self, Setup, mean_of};
    use lookalike_core::similar::Library;
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let meta = choosing_meta();
    let lr = LrConfig::default();
    let c = config(&s).with_wide(true);
    let Setup {
        mut trainer,
        validation,
        ..
    } = schedule::setup(model(&c, &device, 4), meta.clone(), &finetune, &u, &refs, 5);
    let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
    let recipe = report.online.as_ref().unwrap().applied(true);
    let general = trainer.model();
    // The library the record would carry: every training campaign, the validation ones included.
    let library = Library::fit(&OneHot::of_wide(general), &u, &refs, &lr);
    assert_eq!(library.len(), refs.len());
    assert!(
        library.k > 0,
        "the test world has similar campaigns to take"
    );
    let choice = schedule::choose_similar(&validation, general, recipe, &library, Choose, 0.0)
        .unwrap()
        .expect("a wide model with validation campaigns chooses");
    let tuned = recipe.apply(finetune.clone().with_max_steps(10));
    // Both on the validation campaigns split again, not on the rows the kept weights were chosen on.
    let fresh = validation.similar_split();
    assert_eq!(fresh.aids(), validation.aids());
    // Without: the recipe as deployed.
    assert_eq!(choice.aucs_without, fresh.aucs_as(general, &tuned).unwrap());
    assert_ne!(choice.aucs_without, report.aucs, "other rows");
    // With: that library, each campaign's prior from the others'.
    assert_eq!(choice.k, library.k);
    let with = fresh.aucs_with_library(general, &tuned, &library).unwrap();
    assert_eq!(choice.aucs_with, with);
    assert_ne!(
        with, choice.aucs_without,
        "the prior changes the fine-tunes"
    );
    assert_eq!(choice.with, mean_of(&choice.aucs_with));
    assert_eq!(choice.without, mean_of(&choice.aucs_without));
    assert_eq!(choice.used, choice.ahead.clears(0.0));
    // A margin no lead clears keeps the model without it.
    let strict = schedule::choose_similar(&validation, general, recipe, &library, Choose, 1e9)
        .unwrap()
        .unwrap();
    assert!(!strict.used);
    assert_eq!(strict.aucs_with, choice.aucs_with);
    // Always: taken whatever the lead, where there is a prior; never: no comparison.
    let always = schedule::choose_similar(&validation, general, recipe, &library, Always, 1e9)
        .unwrap()
        .unwrap();
    assert!(always.used);
    assert_eq!(always.aucs_with, choice.aucs_with);
    assert!(
        schedule::choose_similar(&validation, general, recipe, &library, Never, 0.0)
            .unwrap()
            .is_none()
    );
    // Settled against the library a record would carry: taken by the rule where it has a prior,
    // and the choice then says so.
    for (rule, want) in [(Choose, choice.used), (Always, true), (Never, false)] {
        let mut c = Some(choice.clone());
        let taken = schedule::settle_similar(rule, &mut c, &library);
        assert_eq!(taken, want, "{rule:?}");
        assert_eq!(c.unwrap().used, taken);
    }
    // Without a wide part there is nothing to fold into.
    let narrow = model(&config(&s).with_wide(false), &device, 4);
    assert!(
        schedule::choose_similar(&validation, &narrow, recipe, &library, Choose, 0.0)
            .unwrap()
            .is_none()
    );
}

/// The online recipe chosen again for the online stage as it runs with the similar campaigns'
/// prior: every recipe tried, each validation campaign starting from the prior of the others, on
/// the validation campaigns split a third way (neither the fit's rows nor the similar comparison's).
#[test]
fn the_recipe_is_chosen_again_with_the_prior_on_a_fresh_split() {
    use lookalike_core::finetune::OnlineRecipe;
    use lookalike_core::lr::{LrConfig, OneHot};
    use lookalike_core::schedule::{self, OnlineChoice, Setup, mean_of};
    use lookalike_core::similar::Library;
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let c = config(&s).with_wide(true);
    let Setup {
        mut trainer,
        validation,
        ..
    } = schedule::setup(
        model(&c, &device, 4),
        choosing_meta(),
        &finetune,
        &u,
        &refs,
        5,
    );
    let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
    let general = trainer.model();
    let library = Library::fit(&OneHot::of_wide(general), &u, &refs, &LrConfig::default());
    assert!(library.k > 0);
    let (choice, aucs) =
        schedule::choose_online_with_prior(&validation, general, &library, true, 0.0).unwrap();
    let tried: Vec<OnlineRecipe> = choice.tried.iter().map(|t| t.0).collect();
    assert_eq!(tried, OnlineRecipe::ALL);
    let fresh = validation.recipe_split();
    assert_eq!(fresh.aids(), validation.aids());
    let tuned = finetune.clone().with_max_steps(10);
    // Each recipe's AUCs are its fine-tunes from the prior, on the fresh split (the average's too,
    // though it is scored from the two single runs' fine-tunes).
    for ((recipe, mean), per) in choice.tried.iter().zip(&choice.aucs) {
        let again = fresh
            .aucs_with_library(general, &recipe.apply(tuned.clone()), &library)
            .unwrap();
        assert_eq!(per, &again, "{recipe:?}");
        assert_eq!(mean_of(per), *mean);
    }
    assert_eq!(
        choice.recipe,
        choice.tried[OnlineChoice::pick(&choice.tried, &choice.aucs, 0.0)].0
    );
    assert_eq!(
        aucs,
        choice.aucs[tried.iter().position(|&r| r == choice.recipe).unwrap()]
    );
    // Not the rows the fit chose on, nor those the similar comparison uses.
    let without = report.online.as_ref().unwrap();
    assert_ne!(choice.aucs[0], without.aucs[0], "other rows, and the prior");
    let similar = validation.similar_split();
    assert_ne!(
        similar
            .aucs_with_library(general, &tuned, &library)
            .unwrap(),
        choice.aucs[0],
        "another split than the similar comparison's"
    );
}

/// Where the two runs' average is not wanted (non-seeds sampled from the pool), a choice of it gives
/// way to the best single run tried; any other choice stands. With a margin, the default recipe stays
/// unless another clearly leads it.
#[test]
fn a_chosen_average_gives_way_to_the_best_single_run() {
    use lookalike_core::finetune::OnlineRecipe as R;
    use lookalike_core::schedule::OnlineChoice;
    let choice = |recipe, tried: &[(R, f64)]| OnlineChoice {
        recipe,
        tried: tried.to_vec(),
        aucs: Vec::new(),
    };
    let averaged = choice(
        R::Averaged,
        &[
            (R::AsConfigured, 0.70),
            (R::NonNegativeOffset, 0.72),
            (R::UnitOffset, f64::NAN),
            (R::NoWideFit, 0.60),
            (R::WideOnly, 0.72),
            (R::Averaged, 0.75),
        ],
    );
    assert_eq!(averaged.applied(true), R::Averaged);
    // The earliest of the best on a tie, a NaN never.
    assert_eq!(averaged.applied(false), R::NonNegativeOffset);
    let single = choice(R::WideOnly, &[(R::AsConfigured, 0.7), (R::WideOnly, 0.8)]);
    assert_eq!(single.applied(false), R::WideOnly);
    assert_eq!(single.applied(true), R::WideOnly);
    // Nothing else finite: the configuration as given.
    let alone = choice(
        R::Averaged,
        &[(R::AsConfigured, f64::NAN), (R::Averaged, 0.7)],
    );
    assert_eq!(alone.applied(false), R::AsConfigured);
    // By margin: the average stays unless another recipe leads it by more than `margin` standard
    // errors of the paired difference, on two campaigns at least.
    let tried = [
        (R::AsConfigured, 0.0),
        (R::WideOnly, 0.0),
        (R::Averaged, 0.0),
    ];
    let aucs = |a: &[f64]| a.iter().map(|&x| Some(x)).collect::<Vec<_>>();
    let per = [
        aucs(&[0.70, 0.80, 0.60]),
        // +0.02 on every campaign: clears any margin.
        aucs(&[0.72, 0.82, 0.62]),
        aucs(&[0.70, 0.80, 0.60]),
    ];
    assert_eq!(OnlineChoice::pick(&tried, &per, 5.0), 1);
    let noisy = [
        aucs(&[0.70, 0.80, 0.60]),
        // +0.03 on average: ahead, not by one standard error of the difference (0.044).
        aucs(&[0.80, 0.75, 0.64]),
        aucs(&[0.70, 0.80, 0.60]),
    ];
    assert_eq!(OnlineChoice::pick(&tried, &noisy, 0.0), 1);
    assert_eq!(OnlineChoice::pick(&tried, &noisy, 1.0), 2);
    let one = [aucs(&[0.9]), aucs(&[0.9]), aucs(&[0.1])];
    assert_eq!(OnlineChoice::pick(&tried, &one, 0.0), 2, "one campaign");
    // Without the average tried, the configuration as given is the default.
    assert_eq!(OnlineChoice::pick(&tried[..2], &per[..2], 0.0), 1);
    assert_eq!(OnlineChoice::pick(&tried[..2], &noisy[..2], 1.0), 0);
    // Without per-campaign AUCs (older records), the choice stands.
    assert_eq!(averaged.with_margin(1e9), R::Averaged);
    // A record whose recipe was chosen again with the similar campaigns' prior applies the earlier
    // choice to an online stage without the prior; one chosen once applies it either way.
    let mut t = TrainingInfo {
        online: Some(averaged.clone()),
        online_without_prior: Some(single.clone()),
        ..TrainingInfo::default()
    };
    assert_eq!(t.online_recipe(true), R::Averaged);
    assert_eq!(t.online_recipe_with(true, true), R::Averaged);
    assert_eq!(t.online_recipe_with(false, true), R::NonNegativeOffset);
    assert_eq!(t.online_recipe_with(true, false), R::WideOnly);
    t.online_without_prior = None;
    assert_eq!(t.online_recipe_with(true, false), R::Averaged);
    assert_eq!(single.with_margin(1e9), R::WideOnly);
    // Applied, the average turns on the two runs; the others leave them off.
    let ft = lookalike_core::finetune::FineTuneConfig::new();
    assert!(R::Averaged.apply(ft.clone()).soups(true));
    assert!(R::ALL[..5].iter().all(|r| !r.apply(ft.clone()).soups(true)));
}

/// Choosing the number of experts pairs the fits' own per-campaign validation AUCs (as deployed, each
/// with its chosen online recipe) and chooses as it would by fine-tuning both models again on the
/// configured model's validation campaigns: the one-expert model's validation holds the same ones.
#[test]
fn the_experts_choice_reads_the_fits_validation() {
    use lookalike_core::schedule::{self, ExpertsChoice, FitReport, Setup};
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let meta = choosing_meta();
    let fit = |experts: usize| {
        let c = config(&s).with_num_experts(experts);
        let Setup {
            mut trainer,
            validation,
            ..
        } = schedule::setup(model(&c, &device, 4), meta.clone(), &finetune, &u, &refs, 5);
        let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
        (trainer.into_model(), validation, report)
    };
    let (three, validation, r3) = fit(3);
    let (one, _, r1) = fit(1);
    assert_eq!(r1.aucs.len(), validation.len());
    let kept = ExpertsChoice::choose(&[(3, &r3), (1, &r1)], 0.0);
    // Each model fine-tuned again on the configured model's validation campaigns, with its recipe.
    let again = |m: &MetaHeac, r: &FitReport| FitReport {
        aucs: validation
            .aucs_as(
                m,
                &r.online.as_ref().unwrap().recipe.apply(finetune.clone()),
            )
            .unwrap(),
        ..r.clone()
    };
    let (a3, a1) = (again(&three, &r3), again(&one, &r1));
    let again = ExpertsChoice::choose(&[(3, &a3), (1, &a1)], 0.0);
    assert_eq!(kept, again);
    assert_eq!(kept.0.tried[0].1, schedule::mean_of(&r3.aucs));
    assert_eq!(kept.0.versus[0].campaigns, validation.len());
}

/// A run resumed from a checkpoint written before the fit kept its per-campaign validation AUCs (a
/// version-2 checkpoint reads with none) ends with the AUCs, online choice and weights of the
/// uninterrupted run, with and without the online choice: the fit validates its kept weights again
/// where the resumed part found nothing better.
#[test]
fn a_resume_without_the_validation_aucs_finds_them_again() {
    use lookalike_core::checkpoint::Checkpoint;
    use lookalike_core::schedule::{self, Checkpointing, Setup};
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    for select in [true, false] {
        let meta = choosing_meta()
            .with_val_patience(3)
            .with_max_iterations(12)
            .with_val_every(4)
            .with_online_select(select);
        let setup = || {
            schedule::setup(
                model(&config(&s), &device, 4),
                meta.clone(),
                &finetune,
                &u,
                &refs,
                5,
            )
        };
        let Setup {
            mut trainer,
            validation,
            ..
        } = setup();
        let whole = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
        let whole_model = trainer.into_model();
        assert_eq!(whole.aucs.len(), validation.len());
        // Halted after iteration 10, past the last validation that kept weights in this run.
        let halt = 10;
        assert!(whole.best_iteration < halt, "{whole:?}");
        let Setup { mut trainer, .. } = setup();
        let mut saved: Option<Checkpoint> = None;
        let mut due = |i: usize| i == halt;
        let mut write = |c: &Checkpoint| {
            saved = Some(c.clone());
            Ok(true)
        };
        let cut = schedule::fit_resumable(
            &mut trainer,
            Some(&validation),
            None,
            None,
            Some(Checkpointing {
                run: serde_json::Value::Null,
                due: &mut due,
                write: &mut write,
            }),
            &mut |_| {},
        )
        .unwrap();
        assert!(cut.halted);
        let mut old = saved.expect("a checkpoint");
        assert_eq!(old.header.report.aucs.len(), validation.len());
        old.header.report.aucs.clear();
        let Setup { mut trainer, .. } = setup();
        let resumed = schedule::fit_resumable(
            &mut trainer,
            Some(&validation),
            None,
            Some(&old),
            None,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(resumed.aucs, whole.aucs, "online choice {select}");
        assert_eq!(resumed.online, whole.online);
        assert_eq!(resumed.online.is_some(), select);
        assert_eq!(resumed.best_iteration, whole.best_iteration);
        let h = header(&s, &config(&s), Precision::F32);
        assert!(
            record::to_bytes(trainer.model(), &h).unwrap()
                == record::to_bytes(&whole_model, &h).unwrap(),
            "the resumed run's weights differ"
        );
    }
}

/// [`validation_world`] with a fifth of the labels flipped, so that online recipes' AUCs differ.
fn noisy_validation_world(u: &UserTable) -> Vec<Campaign> {
    let mut camps = validation_world(u);
    for (k, c) in camps.iter_mut().enumerate() {
        for r in &mut c.stage1 {
            r.label ^= (r.user as usize * 7 + k).is_multiple_of(5);
        }
    }
    camps
}

/// The schema, users, [`noisy_validation_world`] and a short fine-tuning: where the online recipes and
/// the number of experts are chosen.
fn choosing_world() -> (
    Schema,
    UserTable,
    Vec<Campaign>,
    lookalike_core::finetune::FineTuneConfig,
) {
    let u = users(300, 8);
    let camps = noisy_validation_world(&u);
    let finetune = lookalike_core::finetune::FineTuneConfig::new()
        .with_batch(32)
        .with_max_steps(10);
    (schema(), u, camps, finetune)
}

/// A short validated schedule whose validation chooses the online recipe.
fn choosing_meta() -> MetaConfig {
    MetaConfig::new()
        .with_support_size(32)
        .with_query_size(32)
        .with_val_fraction(0.4)
        .with_val_every(5)
        .with_val_patience(1)
        .with_max_iterations(10)
        .with_threads(2)
        .with_online_select(true)
}

/// Eight learnable campaigns for meta-training with validation, spread over the schema's three ad
/// categories.
fn validation_world(u: &UserTable) -> Vec<Campaign> {
    let mut camps = learnable_campaigns(u, 8);
    for (k, c) in camps.iter_mut().enumerate() {
        c.ad[0] = k as u32 % 3 + 1;
    }
    camps
}

/// Patience stops the run at the first validation that is `val_patience` short of a better AUC, but
/// not before `val_min_passes` passes over the training rows; with the same seed both runs follow
/// one trajectory.
#[test]
fn patience_waits_for_the_minimum_passes() {
    use lookalike_core::finetune::FineTuneConfig;
    use lookalike_core::schedule::{self, FitReport, Setup};
    let device = Device::flex().autodiff();
    let s = schema();
    let u = users(300, 8);
    let camps = validation_world(&u);
    let refs: Vec<&Campaign> = camps.iter().collect();
    let finetune = FineTuneConfig::new().with_batch(32).with_max_steps(5);
    let cap = 60;
    let run = |min_passes: f64| -> (FitReport, usize, usize) {
        let meta = MetaConfig::new()
            .with_support_size(16)
            .with_query_size(16)
            .with_val_fraction(0.4)
            .with_val_every(1)
            .with_val_patience(1)
            .with_val_min_passes(min_passes)
            .with_max_iterations(cap)
            .with_online_select(false);
        let Setup {
            mut trainer,
            validation,
            ..
        } = schedule::setup(
            model(&config(&s), &device, 4),
            meta.clone(),
            &finetune,
            &u,
            &refs,
            5,
        );
        let (per_pass, floor) = (trainer.iterations_per_pass(), trainer.patience_floor());
        let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
        (report, floor, per_pass)
    };
    // Where patience 1 stops: the first validation from iteration `from` on that is no better than
    // the best before it.
    let first_stop = |curve: &[(usize, f64)], from: usize| {
        (1..curve.len())
            .find(|&i| curve[i].0 >= from && curve[..i].iter().any(|&(_, b)| b >= curve[i].1))
            .map_or(cap, |i| curve[i].0)
    };
    let (plain, floor, per_pass) = run(0.0);
    assert_eq!(floor, 0);
    assert!(plain.iterations < cap, "patience stops this run early");
    assert_eq!(plain.iterations, first_stop(&plain.curve, 0));

    let want = plain.iterations + 5;
    let (held, floor, _) = run(want as f64 / per_pass as f64);
    assert!(floor >= want && floor < cap, "{floor}");
    assert!(held.iterations >= floor);
    assert_eq!(held.iterations, first_stop(&held.curve, floor));
    assert_eq!(held.curve[..plain.curve.len()], plain.curve[..]);
}

/// The refit (`MetaConfig::val_refit`) meta-trains the fit's initial weights on every campaign, the
/// validation ones included, for as many passes over the rows as the kept iteration made: the same
/// weights as a trainer on all the campaigns run that long by hand, and not the fit's. A fit that kept
/// its initial weights, or had no validation campaigns, has nothing to refit.
#[test]
fn the_refit_trains_on_the_validation_campaigns_too() {
    use lookalike_core::schedule::{self, FitReport, Setup, refit_iterations};
    use lookalike_core::unknown::fill_unseen;
    assert_eq!(refit_iterations(100, 800, 1000), 125);
    assert_eq!(refit_iterations(0, 800, 1000), 0);
    assert_eq!(refit_iterations(7, 0, 1000), 7);
    let device = Device::flex().autodiff();
    let (s, u, camps, finetune) = choosing_world();
    let refs: Vec<&Campaign> = camps.iter().collect();
    let meta = choosing_meta()
        .with_online_select(false)
        .with_val_refit(true);
    let Setup {
        mut trainer,
        validation,
        train_campaigns,
    } = schedule::setup(
        model(&config(&s), &device, 4),
        meta.clone(),
        &finetune,
        &u,
        &refs,
        5,
    );
    assert!(!validation.is_empty() && train_campaigns < refs.len());
    let report = schedule::fit(&mut trainer, Some(&validation), None, &mut |_| {}).unwrap();
    let fitted = trainer.into_model();
    // However the short fit went, refit as if it had kept iteration 6.
    let report = FitReport {
        best_iteration: 6,
        ..report
    };
    let all_rows: usize = refs.iter().map(|c| c.stage1.len()).sum();
    let total = refit_iterations(6, report.fit_rows, all_rows);
    assert!(report.fit_rows < all_rows && total > 6, "{total}");
    let mut steps = 0;
    let (refitted, ran) = schedule::refit(
        model(&config(&s), &device, 4),
        meta.clone(),
        &u,
        &refs,
        5,
        &report,
        &mut |_| steps += 1,
    )
    .unwrap()
    .expect("a fit that kept a trained iteration is refit");
    assert_eq!(steps, total);
    assert_eq!(ran, total);
    let mut by_hand = MetaTrainer::new(model(&config(&s), &device, 4), meta.clone(), &u, &refs, 6);
    for _ in 0..total {
        by_hand.step();
    }
    let seen = by_hand.seen();
    let by_hand = fill_unseen(by_hand.into_model(), &seen);
    let bytes = |m: &MetaHeac| record::weights_to_bytes(m, Precision::F32).unwrap();
    assert_eq!(bytes(&refitted), bytes(&by_hand));
    assert_ne!(bytes(&refitted), bytes(&fitted));
    // Nothing to refit: a fit that kept its initial weights, or one without validation campaigns.
    let untrained = FitReport {
        best_iteration: 0,
        ..report.clone()
    };
    let unvalidated = FitReport {
        best_auc: None,
        ..report
    };
    for nothing in [untrained, unvalidated] {
        let none = schedule::refit(
            model(&config(&s), &device, 4),
            meta.clone(),
            &u,
            &refs,
            5,
            &nothing,
            &mut |_| {},
        )
        .unwrap();
        assert!(none.is_none());
    }
}
