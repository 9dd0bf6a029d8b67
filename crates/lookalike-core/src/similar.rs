//! Similar past campaigns: a look-alike baseline without a network. Every training campaign keeps
//! the logistic regression fitted on its own rows (the library). A new campaign's rows rank the
//! library's models by how well they order its seeds above its non-seeds (AUC); the `k` best, each
//! standardised over those rows, are averaged into a prior logit, linear in the user's tokens, and an
//! LR on the new campaign's tokens is fitted on top of it (a GLM offset whose coefficient is fitted).
//! `k` is chosen on the library itself, leaving each campaign out in turn (0: plain LR).
//!
//! MetaHeac takes the same prior in its wide part before the online stage ([`Library::fold`]; by
//! default, or where its validation campaigns choose it: [`crate::meta::MetaConfig::similar`],
//! [`crate::schedule::choose_similar`]); the record then carries the library ([`Library::to_bytes`]).

use crate::data::{Campaign, Row, UserTable};
use crate::lr::{Lr, LrConfig, OneHot};
use crate::metrics::auc;
use crate::model::MetaHeac;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// `k` for every campaign of the library (the other ones, where one is left out).
pub const ALL: usize = u32::MAX as usize;

/// The `k` values [`Library::fit`] chooses from; 0 is plain LR. Up to 10 first: k = 10, then the top,
/// was chosen on nine of twelve development worlds, so the grid goes on to 20 and to every campaign.
pub const K_CHOICES: [usize; 7] = [0, 1, 3, 5, 10, 20, ALL];

/// `k` for people ("all" for [`ALL`]).
pub fn k_name(k: usize) -> String {
    match k {
        ALL => "all".into(),
        k => k.to_string(),
    }
}

/// Per-campaign logistic regressions over the same one-hot columns, and the `k` their
/// leave-one-out check chose.
#[derive(Debug, Clone)]
pub struct Library {
    /// One weight vector (bias dropped: standardising over a campaign's rows removes it) per
    /// campaign, over `dim` columns, kept sparse where that is smaller: an L2 fit leaves the
    /// columns its rows lack at exactly 0, so a campaign costs what its users' tokens are, not the
    /// whole vocabulary.
    weights: Vec<Weights>,
    /// Each campaign's id, in the same order.
    aids: Vec<String>,
    pub dim: usize,
    /// The one-hot columns the weights are over (the wide part's).
    onehot: OneHot,
    /// How many similar campaigns make the prior (0: none).
    pub k: usize,
    /// Mean held-out AUC of each candidate `k` over the campaigns left out (what `k` was chosen by).
    pub scores: Vec<(usize, f64)>,
}

/// A campaign's weights: its non-zero ones (columns in increasing order, and their values), or all
/// `dim` of them where most are non-zero (a small vocabulary every campaign's users cover), whichever
/// takes less memory.
#[derive(Debug, Clone)]
enum Weights {
    Sparse { cols: Vec<u32>, vals: Vec<f32> },
    Dense(Vec<f32>),
}

impl Weights {
    /// From the non-zero weights (columns increasing) over `dim` columns.
    fn new(cols: Vec<u32>, vals: Vec<f32>, dim: usize) -> Weights {
        if cols.len() * 2 <= dim {
            return Weights::Sparse { cols, vals };
        }
        let mut w = vec![0f32; dim];
        for (&j, &v) in cols.iter().zip(&vals) {
            w[j as usize] = v;
        }
        Weights::Dense(w)
    }

    fn of_fit(w: &[f64]) -> Weights {
        let (cols, vals) = w
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v as f32 != 0.0)
            .map(|(j, &v)| (j as u32, v as f32))
            .unzip();
        Weights::new(cols, vals, w.len())
    }

    /// The non-zero weights, columns increasing.
    fn non_zero(&self) -> Box<dyn Iterator<Item = (u32, f32)> + '_> {
        match self {
            Weights::Sparse { cols, vals } => {
                Box::new(cols.iter().copied().zip(vals.iter().copied()))
            }
            Weights::Dense(w) => Box::new(
                w.iter()
                    .enumerate()
                    .filter(|&(_, &v)| v != 0.0)
                    .map(|(j, &v)| (j as u32, v)),
            ),
        }
    }

    /// Each row's logit (Σ of the weights of its columns); a sparse campaign's go through `dense`,
    /// a zeroed buffer `dim` long that is zeroed again after.
    fn logits(&self, x: &[Vec<u32>], dense: &mut [f32]) -> Vec<f64> {
        let sum = |w: &[f32]| -> Vec<f64> {
            x.iter()
                .map(|cols| cols.iter().map(|&c| w[c as usize] as f64).sum())
                .collect()
        };
        match self {
            Weights::Dense(w) => sum(w),
            Weights::Sparse { cols, vals } => {
                for (&j, &v) in cols.iter().zip(vals) {
                    dense[j as usize] = v;
                }
                let z = sum(dense);
                for &j in cols {
                    dense[j as usize] = 0.0;
                }
                z
            }
        }
    }
}

/// A prior logit over tokens: Σ of the weights of a user's columns, plus `bias`.
#[derive(Debug, Clone)]
pub struct Prior {
    pub weights: Vec<f64>,
    pub bias: f64,
    /// The library's campaigns it averages, most similar first.
    pub campaigns: Vec<usize>,
}

impl Prior {
    pub fn logit(&self, cols: &[u32]) -> f64 {
        self.bias + cols.iter().map(|&j| self.weights[j as usize]).sum::<f64>()
    }
}

impl Library {
    /// Fits every campaign's LR on its stage-1 rows, then chooses `k` among [`K_CHOICES`]: each
    /// campaign with at least 4 seeds and 4 non-seeds is split in two halves (stratified, seeded by
    /// its index), [`Self::fit_and_score`] on one half with the other campaigns as the library, scored on
    /// the other half; the `k` with the highest mean AUC is kept (the smallest on a tie).
    pub fn fit(
        onehot: &OneHot,
        users: &UserTable,
        campaigns: &[&Campaign],
        cfg: &LrConfig,
    ) -> Library {
        let threads = crate::meta::threads(0);
        let weights: Vec<Weights> = crate::meta::per_task(campaigns.len(), threads, |i| {
            let c = campaigns[i];
            let x = onehot.rows(users, &c.stage1);
            let y: Vec<bool> = c.stage1.iter().map(|r| r.label).collect();
            Weights::of_fit(&Lr::fit(&x, &y, onehot.dim, cfg).weights)
        });
        let mut lib = Library {
            weights,
            aids: campaigns.iter().map(|c| c.aid.clone()).collect(),
            dim: onehot.dim,
            onehot: onehot.clone(),
            k: 0,
            scores: Vec::new(),
        };
        let held: Vec<Vec<f64>> = crate::meta::per_task(campaigns.len(), threads, |i| {
            let c = campaigns[i];
            let pos = c.stage1.iter().filter(|r| r.label).count();
            if pos < 4 || c.stage1.len() - pos < 4 {
                return None;
            }
            let mut rng = StdRng::seed_from_u64(i as u64);
            let (a, b) = crate::finetune::stratified_split(&c.stage1, 0.5, &mut rng);
            let xa = onehot.rows(users, &a);
            let ya: Vec<bool> = a.iter().map(|r| r.label).collect();
            let xb = onehot.rows(users, &b);
            let yb: Vec<bool> = b.iter().map(|r| r.label).collect();
            // The ranking is the same for every k; only how many it takes differs.
            let ranked = lib.rank(&xa, &ya, Some(i));
            let aucs = K_CHOICES
                .iter()
                .map(|&k| {
                    let prior = lib.average(&ranked, k);
                    let scores = fit_and_score(&xa, &ya, &xb, prior.as_ref(), lib.dim, cfg);
                    auc(&yb, &scores).unwrap_or(0.5)
                })
                .collect();
            Some(aucs)
        })
        .into_iter()
        .flatten()
        .collect();
        if !held.is_empty() {
            lib.scores = K_CHOICES
                .iter()
                .enumerate()
                .map(|(j, &k)| {
                    (
                        k,
                        held.iter().map(|a| a[j]).sum::<f64>() / held.len() as f64,
                    )
                })
                .collect();
            let best = lib
                .scores
                .iter()
                .fold(None::<(usize, f64)>, |b, &(k, a)| match b {
                    Some((_, ba)) if ba >= a => b,
                    _ => Some((k, a)),
                });
            lib.k = best.map_or(0, |(k, _)| k);
        }
        lib
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// How many campaigns a prior averages, for people: "all" where `k` reaches every campaign.
    pub fn k_label(&self) -> String {
        if self.k >= self.len() && self.k > 0 {
            "all".into()
        } else {
            k_name(self.k)
        }
    }

    /// The ids of the campaigns `prior` averages, most similar first.
    pub fn aids_of(&self, prior: &Prior) -> Vec<&str> {
        prior
            .campaigns
            .iter()
            .map(|&j| self.aids[j].as_str())
            .collect()
    }

    /// The prior for a campaign whose rows are `x` with labels `y`: the `k` library models (but
    /// `exclude`) that rank its seeds highest (AUC over its rows; the earlier on a tie), each
    /// standardised to mean 0 and spread 1 over its rows, averaged. `None` when `k` is 0, the
    /// library holds no other campaign, or the rows lack a seed or a non-seed.
    pub fn prior(
        &self,
        x: &[Vec<u32>],
        y: &[bool],
        k: usize,
        exclude: Option<usize>,
    ) -> Option<Prior> {
        if k == 0 {
            return None;
        }
        self.average(&self.rank(x, y, exclude), k)
    }

    /// [`Self::prior`] with the library's `k` for a campaign's rows.
    pub fn prior_for(&self, users: &UserTable, rows: &[Row]) -> Option<Prior> {
        self.prior_of_rows(users, rows, None)
    }

    /// [`Self::prior_for`] for campaign `aid`, which may be in the library: its prior comes from the
    /// other campaigns, as a campaign the library has never seen gets it (validation campaigns are in
    /// the library a record carries).
    pub fn prior_leaving_out(&self, users: &UserTable, rows: &[Row], aid: &str) -> Option<Prior> {
        self.prior_of_rows(users, rows, self.aids.iter().position(|a| a == aid))
    }

    fn prior_of_rows(
        &self,
        users: &UserTable,
        rows: &[Row],
        exclude: Option<usize>,
    ) -> Option<Prior> {
        let y: Vec<bool> = rows.iter().map(|r| r.label).collect();
        self.prior(&self.onehot.rows(users, rows), &y, self.k, exclude)
    }

    /// `model` with the prior of the campaign whose fine-tuning rows are `rows` in its wide part
    /// ([`fold_into`]): where MetaHeac's online stage starts when its validation chose the prior.
    /// Unchanged where there is no prior (k = 0, rows of one label) or no wide part.
    pub fn fold(&self, model: MetaHeac, users: &UserTable, rows: &[Row]) -> MetaHeac {
        fold_some(model, self.prior_for(users, rows))
    }

    /// [`Self::fold`] with the prior of [`Self::prior_leaving_out`].
    pub fn fold_leaving_out(
        &self,
        model: MetaHeac,
        users: &UserTable,
        rows: &[Row],
        aid: &str,
    ) -> MetaHeac {
        fold_some(model, self.prior_leaving_out(users, rows, aid))
    }

    /// The library as bytes (a record's section): `k`, the leave-one-out scores, then each
    /// campaign's id and non-zero weights (an L2 fit leaves the columns its rows lack at exactly 0, so a
    /// campaign costs what its users' tokens are, not the whole vocabulary). Little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let u32s = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u32).to_le_bytes());
        u32s(&mut out, self.k);
        u32s(&mut out, self.dim);
        u32s(&mut out, self.scores.len());
        for &(k, a) in &self.scores {
            u32s(&mut out, k);
            out.extend_from_slice(&a.to_le_bytes());
        }
        u32s(&mut out, self.weights.len());
        for (w, aid) in self.weights.iter().zip(&self.aids) {
            u32s(&mut out, aid.len());
            out.extend_from_slice(aid.as_bytes());
            let (cols, vals): (Vec<u32>, Vec<f32>) = w.non_zero().unzip();
            u32s(&mut out, cols.len());
            for j in cols {
                out.extend_from_slice(&j.to_le_bytes());
            }
            for v in vals {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`Self::to_bytes`]' bytes, over `onehot`'s columns (a record's model's wide part).
    pub fn from_bytes(bytes: &[u8], onehot: &OneHot) -> Result<Library, String> {
        let mut r = Reader(bytes);
        let k = r.u32("k")?;
        let dim = r.u32("columns")?;
        if dim != onehot.dim {
            return Err(format!(
                "the similar campaigns' library has {dim} columns, the model's wide part {}",
                onehot.dim
            ));
        }
        let n = r.u32("scores")?;
        let mut scores = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let k = r.u32("scores")?;
            let a = f64::from_le_bytes(r.take(8, "scores")?.try_into().expect("8 bytes"));
            scores.push((k, a));
        }
        let campaigns = r.u32("campaigns")?;
        let mut weights = Vec::with_capacity(campaigns.min(1 << 16));
        let mut aids = Vec::with_capacity(campaigns.min(1 << 16));
        for c in 0..campaigns {
            let n = r.u32("a campaign's id")?;
            let aid = std::str::from_utf8(r.take(n, "a campaign's id")?).map_err(|_| {
                format!("the similar campaigns' library: campaign {c}'s id is not UTF-8")
            })?;
            aids.push(aid.to_string());
            let nz = r.u32("a campaign's weights")?;
            let cols = r.take(nz.saturating_mul(4), "a campaign's columns")?;
            let vals = r.take(nz.saturating_mul(4), "a campaign's weights")?;
            let (mut cs, mut vs): (Vec<u32>, Vec<f32>) = (Vec::new(), Vec::new());
            for (j, v) in cols.chunks_exact(4).zip(vals.chunks_exact(4)) {
                let j = u32::from_le_bytes(j.try_into().expect("4 bytes"));
                let v = f32::from_le_bytes(v.try_into().expect("4 bytes"));
                // Increasing columns, as written: a repeated one would count twice.
                let after_last = cs.last().is_none_or(|&l| j > l);
                if j as usize >= dim || !v.is_finite() || !after_last {
                    return Err(format!(
                        "the similar campaigns' library is not valid (campaign {c}: column {j}, weight {v})"
                    ));
                }
                cs.push(j);
                vs.push(v);
            }
            weights.push(Weights::new(cs, vs, dim));
        }
        if !r.0.is_empty() {
            return Err("the similar campaigns' library has bytes after its last campaign".into());
        }
        Ok(Library {
            weights,
            aids,
            dim,
            onehot: onehot.clone(),
            k,
            scores,
        })
    }

    /// The library's models (but `exclude`) by how well they rank the seeds of rows `x` (labels
    /// `y`) above its non-seeds, best first: (AUC, campaign, mean and spread of its logits over
    /// the rows). Empty when the rows lack a seed or a non-seed.
    fn rank(&self, x: &[Vec<u32>], y: &[bool], exclude: Option<usize>) -> Vec<Ranked> {
        let pos = y.iter().filter(|&&l| l).count();
        if pos == 0 || pos == y.len() {
            return Vec::new();
        }
        let mut dense = vec![0f32; self.dim];
        let mut ranked: Vec<Ranked> = (0..self.weights.len())
            .filter(|&j| Some(j) != exclude)
            .map(|j| {
                let z = self.weights[j].logits(x, &mut dense);
                let n = z.len() as f64;
                let mean = z.iter().sum::<f64>() / n;
                let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
                (auc(y, &zf).unwrap_or(0.5), j, mean, sd)
            })
            // A model constant over these rows ranks nothing.
            .filter(|&(_, _, _, sd)| sd > 1e-12)
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked
    }

    /// The first `k` of `ranked`, each standardised, averaged (`None` for none).
    fn average(&self, ranked: &[Ranked], k: usize) -> Option<Prior> {
        let top = &ranked[..k.min(ranked.len())];
        if top.is_empty() {
            return None;
        }
        let n = top.len() as f64;
        let mut weights = vec![0.0; self.dim];
        let mut bias = 0.0;
        for &(_, j, mean, sd) in top {
            let s = 1.0 / (sd * n);
            for (c, v) in self.weights[j].non_zero() {
                weights[c as usize] += v as f64 * s;
            }
            bias -= mean * s;
        }
        Some(Prior {
            weights,
            bias,
            campaigns: top.iter().map(|r| r.1).collect(),
        })
    }

    /// An LR fitted on `x`, `y` over the prior of its `k` most similar campaigns (a plain LR when
    /// there is none), scoring `score` (probabilities).
    pub fn fit_and_score(
        &self,
        x: &[Vec<u32>],
        y: &[bool],
        score: &[Vec<u32>],
        k: usize,
        exclude: Option<usize>,
        cfg: &LrConfig,
    ) -> Vec<f32> {
        let prior = self.prior(x, y, k, exclude);
        fit_and_score(x, y, score, prior.as_ref(), self.dim, cfg)
    }
}

/// Reads a library's bytes front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "the similar campaigns' library is truncated ({what})"
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")) as usize)
    }
}

/// A library model's standing for one campaign: AUC over its rows, its index, and the mean and
/// spread of its logits there.
type Ranked = (f64, usize, f64, f64);

/// LR on `x`, `y` over `prior` (its coefficient fitted; plain LR without one), scoring `score`.
fn fit_and_score(
    x: &[Vec<u32>],
    y: &[bool],
    score: &[Vec<u32>],
    prior: Option<&Prior>,
    dim: usize,
    cfg: &LrConfig,
) -> Vec<f32> {
    let offset: Option<Vec<f64>> = prior.map(|p| x.iter().map(|c| p.logit(c)).collect());
    let cfg = LrConfig {
        fit_offset_scale: true,
        ..*cfg
    };
    let lr = Lr::fit_with_offset(x, y, offset.as_deref(), dim, &cfg);
    score
        .iter()
        .map(|c| {
            let z = lr.logit(c) + prior.map_or(0.0, |p| lr.offset_scale * p.logit(c));
            (1.0 / (1.0 + (-z).exp())) as f32
        })
        .collect()
}

/// "LR + similar campaigns" on one campaign: fitted on its `train` rows with the library's `k`,
/// scoring `candidates`.
pub fn expand(
    library: &Library,
    users: &UserTable,
    train: &[Row],
    candidates: &[Row],
    cfg: &LrConfig,
) -> Vec<f32> {
    let x = library.onehot.rows(users, train);
    let y: Vec<bool> = train.iter().map(|r| r.label).collect();
    let s = library.onehot.rows(users, candidates);
    library.fit_and_score(&x, &y, &s, library.k, None, cfg)
}

/// [`fold_into`] where there is a prior; `model` unchanged where there is none.
fn fold_some(model: MetaHeac, prior: Option<Prior>) -> MetaHeac {
    match prior {
        Some(prior) => fold_into(model, &prior),
        None => model,
    }
}

/// `model` with `prior` added to its wide part, so that its logit becomes s · logit ŷ + w(x) +
/// prior(x) (the prior's bias on every value of the first single-valued field, which every user holds
/// once). Unchanged without a wide part.
pub fn fold_into(model: MetaHeac, prior: &Prior) -> MetaHeac {
    if model.wide.is_empty() {
        return model;
    }
    crate::finetune::scale_and_add_wide(model, 1.0, &prior.weights, prior.bias)
}

#[cfg(test)]
mod tests {
    use super::Weights;

    /// Kept sparse or dense by how many are non-zero, a campaign's weights give the same logits and
    /// the same non-zero entries either way.
    #[test]
    fn sparse_and_dense_weights_agree() {
        let (cols, vals) = (vec![1u32, 3, 4], vec![0.5f32, 1.25, -2.0]);
        let sparse = Weights::new(cols.clone(), vals.clone(), 8);
        let dense = Weights::new(cols.clone(), vals.clone(), 5);
        assert!(matches!(sparse, Weights::Sparse { .. }));
        assert!(matches!(dense, Weights::Dense(_)));
        let x = vec![vec![1, 4], vec![0], vec![4, 3, 1], vec![]];
        let mut buffer = vec![0f32; 8];
        let want = vec![-1.5, 0.0, -0.25, 0.0];
        assert_eq!(sparse.logits(&x, &mut buffer), want);
        assert!(
            buffer.iter().all(|&v| v == 0.0),
            "the buffer is zeroed again"
        );
        assert_eq!(dense.logits(&x, &mut buffer), want);
        let nz: Vec<(u32, f32)> = cols.into_iter().zip(vals).collect();
        assert_eq!(sparse.non_zero().collect::<Vec<_>>(), nz);
        assert_eq!(dense.non_zero().collect::<Vec<_>>(), nz);
    }
}
