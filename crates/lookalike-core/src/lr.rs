//! The paper's weakest baseline, "LR": a logistic regression per campaign on the one-hot user tokens
//! (every token of every user field, id 0 = a missing single-valued field included), with L2, fitted
//! to convergence by L-BFGS. Same objective as scikit-learn's `LogisticRegression(C)`:
//! C · Σ_i log(1 + exp(−s_i z_i)) + ½‖w‖², the intercept not penalised.

use crate::data::{Row, UserTable};
use crate::schema::TableSizes;

/// Maps a user to its active one-hot columns.
#[derive(Debug, Clone)]
pub struct OneHot {
    single: Vec<usize>,
    multi: Vec<usize>,
    multi_lens: Vec<usize>,
    pub dim: usize,
}

impl OneHot {
    pub fn new(tables: &TableSizes, multi_lens: &[usize]) -> Self {
        let mut dim = 0;
        let mut offsets = |sizes: &[usize]| {
            sizes
                .iter()
                .map(|&n| {
                    let o = dim;
                    dim += n;
                    o
                })
                .collect::<Vec<_>>()
        };
        let single = offsets(&tables.user_single);
        let multi = offsets(&tables.user_multi);
        OneHot {
            single,
            multi,
            multi_lens: multi_lens.to_vec(),
            dim,
        }
    }

    /// The columns of `model`'s wide part (one per user token, field by field).
    pub fn of_wide(model: &crate::model::MetaHeac) -> Self {
        let sizes: Vec<usize> = model
            .wide
            .iter()
            .map(|e| e.weight.val().dims()[0])
            .collect();
        let singles = model.user_single.len();
        let tables = TableSizes {
            user_single: sizes[..singles].to_vec(),
            user_multi: sizes[singles..].to_vec(),
            ad: Vec::new(),
        };
        Self::new(&tables, &model.multi_lens)
    }

    /// Active columns of user `u`, sorted, without repeats.
    pub fn columns(&self, users: &UserTable, u: usize) -> Vec<u32> {
        let mut cols: Vec<u32> = users
            .single_of(u)
            .iter()
            .zip(&self.single)
            .map(|(&id, &o)| (o + id as usize) as u32)
            .collect();
        cols.extend(
            users
                .multi_tokens(u, &self.multi_lens)
                .map(|(f, id)| (self.multi[f] + id as usize) as u32),
        );
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// [`Self::columns`] of each row's user.
    pub fn rows(&self, users: &UserTable, rows: &[Row]) -> Vec<Vec<u32>> {
        rows.iter()
            .map(|r| self.columns(users, r.user as usize))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LrConfig {
    /// Inverse L2 strength (scikit-learn's C).
    pub c: f64,
    pub max_iterations: usize,
    /// Converged when the largest gradient component of the per-row objective (the objective / C·n,
    /// as scikit-learn normalises it) is below this.
    pub gradient_tolerance: f64,
    /// With an offset: fit its coefficient too (unpenalised, from 1); otherwise it stays 1 (a plain GLM
    /// offset).
    pub fit_offset_scale: bool,
}

impl Default for LrConfig {
    fn default() -> Self {
        LrConfig {
            c: 1.0,
            max_iterations: 1000,
            gradient_tolerance: 1e-6,
            fit_offset_scale: true,
        }
    }
}

/// The log loss of logit `z` for `label`, log(1 + e^(∓z)), computed stably.
pub fn log_loss(z: f64, label: bool) -> f64 {
    let m = if label { -z } else { z };
    if m > 0.0 {
        m + (-m).exp().ln_1p()
    } else {
        m.exp().ln_1p()
    }
}

/// A fitted logistic regression.
#[derive(Debug, Clone)]
pub struct Lr {
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Coefficient of the offset (1 without one).
    pub offset_scale: f64,
    pub iterations: usize,
    pub converged: bool,
}

impl Lr {
    pub fn logit(&self, cols: &[u32]) -> f64 {
        self.bias + cols.iter().map(|&j| self.weights[j as usize]).sum::<f64>()
    }

    /// Fits on rows given as active columns; `dim` columns in all.
    pub fn fit(x: &[Vec<u32>], y: &[bool], dim: usize, cfg: &LrConfig) -> Lr {
        Self::fit_with_offset(x, y, None, dim, cfg)
    }

    /// Fits with a fixed per-row offset added to the logit (a correction on top of another model's
    /// logit, as a GLM offset).
    pub fn fit_with_offset(
        x: &[Vec<u32>],
        y: &[bool],
        offset: Option<&[f64]>,
        dim: usize,
        cfg: &LrConfig,
    ) -> Lr {
        // A column no row holds has its L2 term alone for gradient, 0 at the start, so it never leaves
        // 0 and adds exactly 0 to every sum: the fit runs on the columns present, in their order, with
        // the same iterates, and its cost no longer grows with the whole vocabulary (hundreds of
        // thousands of tokens at paper scale, where a campaign's rows hold a few thousand).
        let mut present: Vec<u32> = x.iter().flatten().copied().collect();
        present.sort_unstable();
        present.dedup();
        let compact: Vec<Vec<u32>> = x
            .iter()
            .map(|cols| {
                cols.iter()
                    .map(|j| present.binary_search(j).expect("a present column") as u32)
                    .collect()
            })
            .collect();
        let fit = Self::fit_dense(&compact, y, offset, present.len(), cfg);
        let mut weights = vec![0.0; dim];
        for (&j, &w) in present.iter().zip(&fit.weights) {
            weights[j as usize] = w;
        }
        Lr { weights, ..fit }
    }

    /// [`Self::fit_with_offset`] over all `dim` columns.
    fn fit_dense(
        x: &[Vec<u32>],
        y: &[bool],
        offset: Option<&[f64]>,
        dim: usize,
        cfg: &LrConfig,
    ) -> Lr {
        // Parameters: the weights, the intercept, then (with an offset) its unpenalised coefficient,
        // which starts at 1 so that the fit starts from the other model.
        let scaled = offset.is_some() && cfg.fit_offset_scale;
        let n = dim + 1 + usize::from(scaled);
        let f = |p: &[f64], g: &mut [f64]| -> f64 {
            g.fill(0.0);
            let mut loss = 0.0;
            for (i, (cols, &label)) in x.iter().zip(y).enumerate() {
                let o = offset.map_or(0.0, |o| o[i]);
                let a = if scaled { 1.0 + p[dim + 1] } else { 1.0 };
                let z = a * o + p[dim] + cols.iter().map(|&j| p[j as usize]).sum::<f64>();
                let s = if label { 1.0 } else { -1.0 };
                let m = -s * z;
                loss += log_loss(z, label);
                let dz = cfg.c * -s / (1.0 + (-m).exp());
                for &j in cols {
                    g[j as usize] += dz;
                }
                g[dim] += dz;
                if scaled {
                    g[dim + 1] += dz * o;
                }
            }
            let mut reg = 0.0;
            for j in 0..dim {
                reg += p[j] * p[j];
                g[j] += p[j];
            }
            cfg.c * loss + 0.5 * reg
        };
        let scale = (cfg.c * x.len() as f64).max(1.0);
        let (p, iterations, converged) =
            lbfgs(n, f, cfg.max_iterations, cfg.gradient_tolerance * scale);
        Lr {
            bias: p[dim],
            offset_scale: if scaled { 1.0 + p[dim + 1] } else { 1.0 },
            weights: p[..dim].to_vec(),
            iterations,
            converged,
        }
    }
}

/// Minimises a smooth function with L-BFGS (memory 10, backtracking Armijo line search) from 0.
/// Returns the point, the iterations taken and whether the gradient tolerance was met.
pub fn lbfgs(
    n: usize,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    max_iterations: usize,
    tolerance: f64,
) -> (Vec<f64>, usize, bool) {
    const M: usize = 10;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0.0; n];
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let (mut ss, mut ys): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    let (mut x_new, mut g_new) = (vec![0.0; n], vec![0.0; n]);
    for it in 0..max_iterations {
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if gmax <= tolerance {
            return (x, it, true);
        }
        // Two-loop recursion: d = −H g.
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(ss.len());
        for (s, y) in ss.iter().zip(&ys).rev() {
            let a = dot(s, &d) / dot(y, s);
            for (di, yi) in d.iter_mut().zip(y) {
                *di -= a * yi;
            }
            alphas.push(a);
        }
        let gamma = match (ss.last(), ys.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / gmax.max(1.0),
        };
        d.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y), a) in ss.iter().zip(&ys).zip(alphas.into_iter().rev()) {
            let b = dot(y, &d) / dot(y, s);
            for (di, si) in d.iter_mut().zip(s) {
                *di += (a - b) * si;
            }
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (curvature lost): restart from steepest descent.
            ss.clear();
            ys.clear();
            d = g.iter().map(|v| -v / gmax.max(1.0)).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            for i in 0..n {
                x_new[i] = x[i] + step * d[i];
            }
            let f_new = f(&x_new, &mut g_new);
            if f_new <= fx + 1e-4 * step * slope {
                let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
                if dot(&s, &y) > 1e-12 {
                    if ss.len() == M {
                        ss.remove(0);
                        ys.remove(0);
                    }
                    ss.push(s);
                    ys.push(y);
                }
                let done = (fx - f_new).abs() <= 1e-14 * fx.abs().max(1.0);
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                fx = f_new;
                accepted = true;
                if done {
                    let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    return (x, it + 1, gmax <= tolerance);
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            return (x, it + 1, false);
        }
    }
    (x, max_iterations, false)
}

/// Fits LR on a campaign's rows and scores other rows (probabilities).
pub fn fit_and_score(
    onehot: &OneHot,
    users: &UserTable,
    train: &[Row],
    score: &[Row],
    cfg: &LrConfig,
) -> (Lr, Vec<f32>) {
    let x = onehot.rows(users, train);
    let y: Vec<bool> = train.iter().map(|r| r.label).collect();
    let lr = Lr::fit(&x, &y, onehot.dim, cfg);
    let s = score
        .iter()
        .map(|r| {
            let z = lr.logit(&onehot.columns(users, r.user as usize));
            (1.0 / (1.0 + (-z).exp())) as f32
        })
        .collect();
    (lr, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic stream of numbers for the random problems below.
    fn lcg(mut state: u64) -> impl FnMut() -> usize {
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        }
    }

    /// One categorical feature with an intercept and a negligible penalty: the fit reproduces each
    /// category's positive rate (the closed-form maximum-likelihood solution).
    #[test]
    fn one_hot_fit_matches_the_closed_form() {
        let rates = [0.2, 0.5, 0.8];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (k, &rate) in rates.iter().enumerate() {
            for i in 0..100 {
                x.push(vec![k as u32]);
                y.push((i as f64) < rate * 100.0);
            }
        }
        let cfg = LrConfig {
            c: 1e6,
            ..LrConfig::default()
        };
        let lr = Lr::fit(&x, &y, 3, &cfg);
        assert!(lr.converged, "{} iterations", lr.iterations);
        for (k, &rate) in rates.iter().enumerate() {
            let p = 1.0 / (1.0 + (-lr.logit(&[k as u32])).exp());
            assert!((p - rate).abs() < 1e-3, "category {k}: {p} vs {rate}");
        }
    }

    /// Fitting on the columns present gives the dense fit's iterates exactly (absent columns stay 0 and
    /// add 0 to every sum), with an offset and its coefficient too.
    #[test]
    fn the_fit_on_present_columns_is_the_dense_fit() {
        let mut next = lcg(11);
        let used = [3u32, 17, 40, 41, 99, 250];
        let (mut x, mut y, mut offset) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..150 {
            let mut cols = vec![used[next() % 3], used[3 + next() % 3]];
            cols.sort();
            y.push(cols[0] == 3 || next().is_multiple_of(4));
            offset.push((next() % 100) as f64 / 50.0 - 1.0);
            x.push(cols);
        }
        let dim = 300;
        for off in [None, Some(offset.as_slice())] {
            let fast = Lr::fit_with_offset(&x, &y, off, dim, &LrConfig::default());
            let dense = Lr::fit_dense(&x, &y, off, dim, &LrConfig::default());
            assert!(dense.converged && dense.iterations > 2);
            assert_eq!(fast.iterations, dense.iterations);
            assert_eq!(fast.bias.to_bits(), dense.bias.to_bits());
            assert_eq!(fast.offset_scale.to_bits(), dense.offset_scale.to_bits());
            assert_eq!(fast.weights.len(), dim);
            for (j, (a, b)) in fast.weights.iter().zip(&dense.weights).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "column {j}");
            }
            assert!(fast.weights[3] != 0.0 && fast.weights[0] == 0.0);
        }
    }

    /// With the L2 penalty, the optimum is where the objective's gradient vanishes: check it by finite
    /// differences of the objective on a small random problem.
    #[test]
    fn regularised_fit_is_stationary() {
        let mut next = lcg(7);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let mut cols = vec![(next() % 5) as u32, 5 + (next() % 4) as u32];
            cols.sort();
            y.push(cols[0] < 2 || next().is_multiple_of(5));
            x.push(cols);
        }
        let lr = Lr::fit(&x, &y, 9, &LrConfig::default());
        assert!(lr.converged);
        let objective = |w: &[f64], b: f64| -> f64 {
            let mut f = 0.5 * w.iter().map(|v| v * v).sum::<f64>();
            for (cols, &l) in x.iter().zip(&y) {
                let z = b + cols.iter().map(|&j| w[j as usize]).sum::<f64>();
                let s = if l { 1.0 } else { -1.0 };
                f += (1.0 + (-s * z).exp()).ln();
            }
            f
        };
        let h = 1e-5;
        for j in 0..9 {
            let (mut a, mut b) = (lr.weights.clone(), lr.weights.clone());
            a[j] += h;
            b[j] -= h;
            let g = (objective(&a, lr.bias) - objective(&b, lr.bias)) / (2.0 * h);
            assert!(g.abs() < 1e-3, "∂f/∂w_{j} = {g}");
        }
    }
}
