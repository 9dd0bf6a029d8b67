//! Screening the user fields that `prepare --fields all` finds beyond the listed ones: a field is kept
//! when its values are related to the labels of the training campaigns, and left out when they look
//! like noise, since every field the model reads adds weights that few seeds must then pin down (on
//! the demo, three pure-noise fields cost a per-campaign regression 0.002 cold AUC and 0.04 P@5%).
//! Only the training campaigns' stage-1 rows are read, never a test campaign's.
//!
//! The statistic: in each training campaign, with base rate p, each value v of the field (a
//! multi-valued field: each distinct token a user lists; a user without the field: "absent") splits
//! the rows into its n_v users, k_v of them seeds, and contributes the likelihood-ratio statistic
//! G_v = 2 [k log(k / np) + (n − k) log((n − k) / n(1 − p))]. Under "the field says nothing", k_v is
//! Binomial(n_v, p), whose G mean and variance are computed exactly (small counts are far from
//! χ²₁: a value held by one user has mean 2H(p), 0.40 at p = 0.05, not 1). p is the campaign's own
//! base rate, fitted on the same rows, which takes one degree of freedom from each campaign's sum; the
//! field's score is z = Σ (G − E[G] + 1 per campaign) / √Σ Var[G] over its values and the campaigns,
//! centred on 0 for a noise field.

use lookalike_core::data::{Campaign, UserTable};
use std::collections::{BTreeMap, HashMap};

/// A field is kept when its z is above this: about 1 in 1,000 for a noise field's normal score.
pub const KEEP_Z: f64 = 3.0;

/// Where one field's ids sit in a [`UserTable`].
#[derive(Debug, Clone, Copy)]
pub enum Column {
    Single(usize),
    /// The field's index among the multi-valued ones and its first slot.
    Multi {
        field: usize,
        offset: usize,
    },
}

/// The value ids of user `u` in `col` (sorted, distinct; `u32::MAX` when a multi-valued field is absent).
fn values(users: &UserTable, u: usize, col: Column, out: &mut Vec<u32>) {
    out.clear();
    match col {
        Column::Single(i) => out.push(users.single_of(u)[i]),
        Column::Multi { field, offset } => {
            let len = users.lens_of(u)[field] as usize;
            out.extend_from_slice(&users.multi_of(u)[offset..offset + len]);
            out.sort_unstable();
            out.dedup();
            if out.is_empty() {
                out.push(u32::MAX);
            }
        }
    }
}

fn g(n: f64, k: f64, p: f64) -> f64 {
    let term = |obs: f64, exp: f64| {
        if obs > 0.0 {
            obs * (obs / exp).ln()
        } else {
            0.0
        }
    };
    2.0 * (term(k, n * p) + term(n - k, n * (1.0 - p)))
}

/// Mean and variance of G for k ~ Binomial(n, p); χ²₁'s (1, 2) past the counts where that holds
/// well and the exact sum would underflow.
fn g_moments(n: usize, p: f64) -> (f64, f64) {
    if n > 1000 {
        return (1.0, 2.0);
    }
    let (nf, odds) = (n as f64, p / (1.0 - p));
    let mut pk = (1.0 - p).powi(n as i32);
    let (mut m1, mut m2) = (0.0, 0.0);
    for k in 0..=n {
        let gk = g(nf, k as f64, p);
        m1 += pk * gk;
        m2 += pk * gk * gk;
        pk *= (nf - k as f64) / (k as f64 + 1.0) * odds;
    }
    (m1, (m2 - m1 * m1).max(0.0))
}

/// The field's z over the training campaigns' stage-1 rows (0 when no campaign has both labels).
pub fn field_z(users: &UserTable, col: Column, train: &[&Campaign]) -> f64 {
    let (mut excess, mut var) = (0.0, 0.0);
    let mut vals = Vec::new();
    for c in train {
        let n = c.stage1.len();
        let k = c.seeds();
        if k < 2 || k == n {
            continue;
        }
        let p = k as f64 / n as f64;
        // Ordered, so the sums below add in one order: a hashed map's order changes from run to run
        // (its seed is random), and with it the last bits of z in `prepare`'s header.
        let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
        for r in &c.stage1 {
            values(users, r.user as usize, col, &mut vals);
            for &v in &vals {
                let e = counts.entry(v).or_default();
                e.0 += 1;
                e.1 += usize::from(r.label);
            }
        }
        let mut moments: HashMap<usize, (f64, f64)> = HashMap::new();
        for (nv, kv) in counts.into_values() {
            let (m, v) = *moments.entry(nv).or_insert_with(|| g_moments(nv, p));
            excess += g(nv as f64, kv as f64, p) - m;
            var += v;
        }
        // p is the campaign's own base rate, fitted on these rows, so the values' G add up to a
        // statistic with one degree of freedom fewer than their known-p means count (χ²_{V−1}, not V
        // times χ²₁): give it back, or a noise field's z sits below 0 by about one per campaign over
        // √Σ Var (the development worlds' noise fields scored −3.8 to 0.0, mean −2).
        excess += 1.0;
    }
    if var > 0.0 { excess / var.sqrt() } else { 0.0 }
}

/// The items of `v` whose `keep` is true, in order.
pub fn masked<T>(v: Vec<T>, keep: &[bool]) -> Vec<T> {
    v.into_iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| v)
        .collect()
}

/// The table without the single-valued columns and multi-valued fields whose `keep_*` is false
/// (`multi_lens`: each multi-valued field's slot count).
pub fn keep_columns(
    users: &UserTable,
    keep_single: &[bool],
    keep_multi: &[bool],
    multi_lens: &[usize],
) -> UserTable {
    let mut out = UserTable {
        single_fields: keep_single.iter().filter(|&&k| k).count(),
        multi_fields: keep_multi.iter().filter(|&&k| k).count(),
        multi_width: multi_lens
            .iter()
            .zip(keep_multi)
            .filter(|(_, k)| **k)
            .map(|(l, _)| l)
            .sum(),
        uids: users.uids.clone(),
        ..Default::default()
    };
    for u in 0..users.len() {
        let (single, multi, lens) = (users.single_of(u), users.multi_of(u), users.lens_of(u));
        out.single.extend(
            single
                .iter()
                .zip(keep_single)
                .filter(|(_, k)| **k)
                .map(|(v, _)| v),
        );
        let mut offset = 0;
        for (f, &len) in multi_lens.iter().enumerate() {
            if keep_multi[f] {
                out.multi.extend_from_slice(&multi[offset..offset + len]);
                out.lens.push(lens[f]);
            }
            offset += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookalike_core::data::{Role, Row};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn g_moments_match_a_simulation_and_chi_square_for_large_counts() {
        let mut rng = StdRng::seed_from_u64(1);
        for (n, p) in [(1, 0.05), (3, 0.3), (40, 0.1)] {
            let (m, v) = g_moments(n, p);
            let draws: Vec<f64> = (0..200_000)
                .map(|_| {
                    let k = (0..n).filter(|_| rng.random::<f64>() < p).count();
                    g(n as f64, k as f64, p)
                })
                .collect();
            let sm = draws.iter().sum::<f64>() / draws.len() as f64;
            let sv = draws.iter().map(|x| (x - sm).powi(2)).sum::<f64>() / draws.len() as f64;
            assert!((m - sm).abs() < 0.02 * m.max(0.1), "n {n}: {m} vs {sm}");
            assert!((v - sv).abs() < 0.05 * v.max(0.1), "n {n}: {v} vs {sv}");
        }
        // One user: 2H(p) nats.
        let h = -(0.05f64 * 0.05f64.ln() + 0.95 * 0.95f64.ln());
        assert!((g_moments(1, 0.05).0 - 2.0 * h).abs() < 1e-12);
        let (m, v) = g_moments(1000, 0.2);
        assert!((m - 1.0).abs() < 0.02 && (v - 2.0).abs() < 0.15, "{m} {v}");
    }

    /// Users with a noise field (column 0), a field that moves the label (column 1), and a
    /// multi-valued copy of each; twelve campaigns of 400 rows.
    fn world(seed: u64) -> (UserTable, Vec<Campaign>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut users = UserTable {
            single_fields: 2,
            multi_fields: 2,
            multi_width: 6,
            ..Default::default()
        };
        let n = 3000;
        for u in 0..n {
            let (noise, signal) = (rng.random_range(1..=12u32), rng.random_range(1..=6u32));
            let mut multi = vec![0u32; 6];
            let mut lens = [0u8; 2];
            for (f, base) in [(0usize, noise), (1, signal)] {
                let len = rng.random_range(0..=3usize);
                for s in 0..len {
                    multi[f * 3 + s] = if s == 0 {
                        base
                    } else {
                        rng.random_range(1..=12)
                    };
                }
                lens[f] = len as u8;
            }
            users.push(u as u64, &[noise, signal], &multi, &lens);
        }
        let campaigns = (0..12)
            .map(|_| {
                let hot = rng.random_range(1..=6u32);
                let stage1 = (0..400)
                    .map(|_| {
                        let u = rng.random_range(0..n);
                        let p = if users.single_of(u)[1] == hot {
                            0.3
                        } else {
                            0.08
                        };
                        Row {
                            user: u as u32,
                            label: rng.random::<f64>() < p,
                        }
                    })
                    .collect();
                Campaign {
                    aid: String::new(),
                    ad: Vec::new(),
                    role: Role::Train,
                    stage1,
                    stage2: Vec::new(),
                }
            })
            .collect();
        (users, campaigns)
    }

    #[test]
    fn a_related_field_scores_high_and_noise_does_not() {
        for seed in 0..5 {
            let (users, campaigns) = world(seed);
            let train: Vec<&Campaign> = campaigns.iter().collect();
            let z = |col| field_z(&users, col, &train);
            assert!(
                z(Column::Single(0)) < KEEP_Z,
                "seed {seed}: noise {}",
                z(Column::Single(0))
            );
            assert!(
                z(Column::Single(1)) > 3.0 * KEEP_Z,
                "seed {seed}: {}",
                z(Column::Single(1))
            );
            let multi = |field| Column::Multi {
                field,
                offset: field * 3,
            };
            assert!(z(multi(0)) < KEEP_Z, "seed {seed}: noise {}", z(multi(0)));
            assert!(z(multi(1)) > KEEP_Z, "seed {seed}: {}", z(multi(1)));
        }
    }

    /// The statistic is centred under "the field says nothing": over many worlds a noise field's z
    /// averages about 0 (without the fitted base rate's degree of freedom given back, about −0.7 here).
    #[test]
    fn a_noise_field_scores_about_zero_on_average() {
        let seeds = 60;
        let mean = (0..seeds)
            .map(|seed| {
                let (users, campaigns) = world(1000 + seed);
                let train: Vec<&Campaign> = campaigns.iter().collect();
                field_z(&users, Column::Single(0), &train)
            })
            .sum::<f64>()
            / seeds as f64;
        // A mean of 60 draws of about unit spread: ±0.4 is three standard errors.
        assert!(mean.abs() < 0.4, "mean noise z {mean}");
    }

    #[test]
    fn kept_columns_are_the_table_without_the_others() {
        let (users, _) = world(9);
        let t = keep_columns(&users, &[false, true], &[true, false], &[3, 3]);
        assert_eq!((t.single_fields, t.multi_fields, t.multi_width), (1, 1, 3));
        assert_eq!(t.len(), users.len());
        for u in 0..users.len() {
            assert_eq!(t.single_of(u), &users.single_of(u)[1..]);
            assert_eq!(t.multi_of(u), &users.multi_of(u)[..3]);
            assert_eq!(t.lens_of(u), &users.lens_of(u)[..1]);
        }
    }
}
