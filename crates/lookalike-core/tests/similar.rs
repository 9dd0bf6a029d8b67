//! Similar past campaigns (`lookalike_core::similar`): which campaigns the prior takes, its scale,
//! plain LR at k = 0, and the prior folded into a model's wide part.

mod common;

use lookalike_core::data::{Campaign, Role, Row, UserTable};
use lookalike_core::finetune::predict;
use lookalike_core::lr::{self, LrConfig, OneHot};
use lookalike_core::similar::{self, K_CHOICES, Library, Prior, fold_into};

/// A campaign labelled by `rule` over users `from..to`.
fn campaign(aid: &str, from: usize, to: usize, rule: impl Fn(usize) -> bool) -> Campaign {
    Campaign {
        aid: aid.into(),
        ad: vec![1, 1],
        role: Role::Train,
        stage1: (from..to)
            .map(|u| Row {
                user: u as u32,
                label: rule(u),
            })
            .collect(),
        stage2: Vec::new(),
    }
}

fn world() -> (UserTable, OneHot, Vec<Campaign>) {
    let s = common::schema();
    let users = common::users(600, 7);
    let onehot = OneHot::new(&s.table_sizes(), &common::LENS);
    let age = |u: usize| users.single_of(u)[0];
    let gender = |u: usize| users.single_of(u)[1];
    let campaigns = vec![
        campaign("age", 0, 300, |u| age(u) >= 3),
        campaign("gender", 0, 300, |u| gender(u) == 1),
        // Users 300.. again by age: the campaign a new age campaign is most like, but one.
        campaign("age, again", 300, 600, |u| age(u) >= 3),
        campaign("noise", 0, 300, |u| u % 7 == 0),
    ];
    (users, onehot, campaigns)
}

fn columns(onehot: &OneHot, users: &UserTable, rows: &[Row]) -> (Vec<Vec<u32>>, Vec<bool>) {
    (
        rows.iter()
            .map(|r| onehot.columns(users, r.user as usize))
            .collect(),
        rows.iter().map(|r| r.label).collect(),
    )
}

#[test]
fn the_prior_takes_the_campaigns_that_rank_the_seeds_best() {
    let (users, onehot, campaigns) = world();
    let refs: Vec<&Campaign> = campaigns.iter().collect();
    let lib = Library::fit(&onehot, &users, &refs, &LrConfig::default());
    assert_eq!(lib.len(), 4);
    // k was chosen as the best of its leave-one-out scores, one per candidate.
    assert_eq!(
        lib.scores.iter().map(|s| s.0).collect::<Vec<_>>(),
        K_CHOICES.to_vec()
    );
    let best = lib
        .scores
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(lib.scores.iter().any(|&(k, a)| k == lib.k && a == best));

    // A new campaign labelled by age: the two age campaigns are the most similar.
    let new = campaign("new", 150, 450, |u| users.single_of(u)[0] >= 3);
    let (x, y) = columns(&onehot, &users, &new.stage1);
    let prior = lib.prior(&x, &y, 2, None).expect("a prior");
    let mut two = prior.campaigns.clone();
    two.sort();
    assert_eq!(two, vec![0, 2]);
    // Leaving the first out, the other age campaign comes first.
    let without = lib.prior(&x, &y, 1, Some(0)).expect("a prior");
    assert_eq!(without.campaigns, vec![2]);
    // One campaign, standardised over the rows: mean 0, spread 1.
    let z: Vec<f64> = x.iter().map(|c| without.logit(c)).collect();
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 1e-9, "mean {mean}");
    assert!((sd - 1.0).abs() < 1e-9, "sd {sd}");
    // No prior at k = 0 or without a seed.
    assert!(lib.prior(&x, &y, 0, None).is_none());
    assert!(lib.prior(&x, &vec![false; y.len()], 3, None).is_none());
}

/// A campaign the library holds (a validation campaign, in the library a record carries) gets its
/// prior from the other campaigns, as a campaign the library never saw; one it does not hold gets
/// the library's own prior.
#[test]
fn a_campaign_in_the_library_takes_its_prior_from_the_others() {
    let (users, onehot, campaigns) = world();
    let refs: Vec<&Campaign> = campaigns.iter().collect();
    let mut lib = Library::fit(&onehot, &users, &refs, &LrConfig::default());
    lib.k = 1;
    let rows = &campaigns[0].stage1;
    let (x, y) = columns(&onehot, &users, rows);
    // Itself ranks its own seeds best; left out, the other age campaign comes first.
    assert_eq!(lib.prior_for(&users, rows).unwrap().campaigns, vec![0]);
    let left = lib.prior_leaving_out(&users, rows, "age").unwrap();
    assert_eq!(left.campaigns, vec![2]);
    assert_eq!(left.weights, lib.prior(&x, &y, 1, Some(0)).unwrap().weights);
    // An id the library does not hold leaves nothing out.
    let unseen = lib.prior_leaving_out(&users, rows, "new").unwrap();
    assert_eq!(unseen.campaigns, vec![0]);
    // Every k the same way: never the campaign itself.
    lib.k = similar::ALL;
    let all = lib.prior_leaving_out(&users, rows, "age").unwrap();
    assert_eq!(all.campaigns.len(), 3);
    assert!(!all.campaigns.contains(&0));
}

#[test]
fn with_no_similar_campaign_it_is_plain_lr() {
    let (users, onehot, campaigns) = world();
    let refs: Vec<&Campaign> = campaigns.iter().collect();
    let lib = Library::fit(&onehot, &users, &refs, &LrConfig::default());
    let train: Vec<Row> = campaigns[1].stage1[..200].to_vec();
    let score: Vec<Row> = campaigns[1].stage1[200..].to_vec();
    let (x, y) = columns(&onehot, &users, &train);
    let (s, _) = columns(&onehot, &users, &score);
    let cfg = LrConfig::default();
    let (_, plain) = lr::fit_and_score(&onehot, &users, &train, &score, &cfg);
    assert_eq!(lib.fit_and_score(&x, &y, &s, 0, None, &cfg), plain);
    // With a prior the scores differ.
    assert_ne!(lib.fit_and_score(&x, &y, &s, 1, None, &cfg), plain);
}

#[test]
fn a_folded_prior_adds_its_logit_to_the_model() {
    let s = common::schema();
    let config = common::config(&s).with_wide(true);
    let device = burn::tensor::Device::flex();
    let model = common::model(&config, &device, 3);
    let users = common::users(40, 5);
    let rows = common::rows(40, 6);
    let onehot = OneHot::new(&config.tables, &config.multi_lens);
    let prior = Prior {
        weights: (0..onehot.dim)
            .map(|j| ((j * 37 % 11) as f64 - 5.0) / 10.0)
            .collect(),
        bias: 0.3,
        campaigns: vec![],
    };
    let ad = [1, 1];
    let logit = |p: f32| {
        let p = p as f64;
        (p / (1.0 - p)).ln()
    };
    let before = predict(&model, &users, &ad, &rows, 16);
    let after = predict(&fold_into(model, &prior), &users, &ad, &rows, 16);
    for ((r, b), a) in rows.iter().zip(&before).zip(&after) {
        let want = prior.logit(&onehot.columns(&users, r.user as usize));
        let got = logit(*a) - logit(*b);
        assert!(
            (got - want).abs() < 1e-3,
            "user {}: {got} vs {want}",
            r.user
        );
    }
}

/// The library travels in the general model's record after the weights: the same campaigns, ids,
/// `k`, scores and priors come back; a record without one has none; a damaged one is refused with
/// what is wrong.
#[test]
fn the_library_round_trips_through_a_record() {
    use lookalike_core::record::{self, Precision, RecordError, RecordHeader, TrainingInfo};
    let (users, onehot, campaigns) = world();
    let refs: Vec<&Campaign> = campaigns.iter().collect();
    let lib = Library::fit(&onehot, &users, &refs, &LrConfig::default());
    let s = common::schema();
    let config = common::config(&s).with_wide(true);
    assert_eq!(
        OneHot::new(&config.tables, &config.multi_lens).dim,
        onehot.dim
    );
    let device = burn::tensor::Device::flex();
    let model = common::model(&config, &device, 3);
    let mut header = RecordHeader {
        model: config.clone(),
        schema: s.clone(),
        precision: Precision::F32,
        training: TrainingInfo::default(),
        parameters: 0,
        campaign: None,
        library: None,
    };
    let plain = record::to_bytes(&model, &header).unwrap();
    assert!(record::read_header(&plain).unwrap().0.library.is_none());

    header.library = Some(std::sync::Arc::new(lib.clone()));
    let bytes = record::to_bytes(&model, &header).unwrap();
    let (back, _) = record::read_header(&bytes).unwrap();
    let back = back.library.expect("the library comes back");
    assert_eq!((back.len(), back.dim, back.k), (lib.len(), lib.dim, lib.k));
    assert_eq!(back.scores, lib.scores);
    let new = campaign("new", 150, 450, |u| users.single_of(u)[0] >= 3);
    let (x, y) = columns(&onehot, &users, &new.stage1);
    let (a, b) = (
        lib.prior(&x, &y, 2, None).unwrap(),
        back.prior(&x, &y, 2, None).unwrap(),
    );
    assert_eq!(a.campaigns, b.campaigns);
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.bias, b.bias);
    let mut aids = back.aids_of(&b);
    aids.sort();
    assert_eq!(aids, ["age", "age, again"]);
    // The weights themselves come back.
    let (_, m) = record::from_bytes(&bytes, &device).unwrap();
    let rows = common::rows(40, 6);
    assert_eq!(
        predict(&m, &users, &[1, 1], &rows, 16),
        predict(&model, &users, &[1, 1], &rows, 16)
    );
    // Only when wanted.
    let (h, _) = record::read_header(&bytes).unwrap();
    assert!(h.prior_library(true).is_some());
    assert!(h.prior_library(false).is_none());

    // Cut short, or over other columns: refused, saying so.
    let short = &bytes[..bytes.len() - 3];
    assert!(matches!(
        record::read_header(short),
        Err(RecordError::Truncated(_))
    ));
    let library_bytes = lib.to_bytes();
    let mut wider = s.table_sizes();
    wider.user_single[0] += 1;
    let other = OneHot::new(&wider, &common::LENS);
    let err = Library::from_bytes(&library_bytes, &other).unwrap_err();
    assert!(err.contains("columns"), "{err}");
    let err = Library::from_bytes(&library_bytes[..library_bytes.len() - 1], &onehot).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    // Read back, it writes the same bytes.
    assert_eq!(back.to_bytes(), library_bytes);
    // A column listed twice would count twice: refused.
    let le = |v: u32| v.to_le_bytes();
    let mut twice = Vec::new();
    for v in [0, onehot.dim as u32, 0, 1, 1] {
        twice.extend_from_slice(&le(v));
    }
    twice.extend_from_slice(b"a");
    for v in [2, 3, 3] {
        twice.extend_from_slice(&le(v));
    }
    for v in [0.5f32, 0.5] {
        twice.extend_from_slice(&v.to_le_bytes());
    }
    let err = Library::from_bytes(&twice, &onehot).unwrap_err();
    assert!(err.contains("column 3"), "{err}");
    // The same with increasing columns is read.
    let second = twice.len() - 12;
    twice[second..second + 4].copy_from_slice(&le(4));
    assert_eq!(Library::from_bytes(&twice, &onehot).unwrap().len(), 1);
}
