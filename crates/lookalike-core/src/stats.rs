//! Paired comparison of two methods over the same campaigns: mean difference, wins, and the two-sided
//! paired t-test (Student's t distribution through the regularised incomplete beta function).

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation (0 for fewer than 2 values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean of a − b over the pairs.
    pub mean_diff: f64,
    /// Pairs where a > b, pairs where a = b (common for P@k over a few candidates), and how many pairs.
    pub wins: usize,
    pub ties: usize,
    pub n: usize,
    /// Two-sided p-value of the paired t-test (1 when every difference is 0, NaN for n < 2).
    pub p_value: f64,
}

/// Compares a against b pair by pair.
pub fn paired(a: &[f64], b: &[f64]) -> Paired {
    assert_eq!(a.len(), b.len());
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (m, s) = mean_std(&d);
    let n = d.len();
    let p_value = if n < 2 {
        f64::NAN
    } else if s == 0.0 {
        if m == 0.0 { 1.0 } else { 0.0 }
    } else {
        let t = m / (s / (n as f64).sqrt());
        t_two_sided(t, (n - 1) as f64)
    };
    Paired {
        mean_diff: m,
        wins: d.iter().filter(|&&x| x > 0.0).count(),
        ties: d.iter().filter(|&&x| x == 0.0).count(),
        n,
        p_value,
    }
}

/// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom.
pub fn t_two_sided(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    incomplete_beta(0.5 * df, 0.5, x).clamp(0.0, 1.0)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised incomplete beta I_x(a, b), by its continued fraction (Lentz).
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(b, a, 1.0 - x);
    }
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..300 {
        let m = m as f64;
        for num in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + num * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + num / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f / a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_test_matches_tables() {
        // Student's t tables (two-sided): t = 2.228 at df 10 gives 0.05; t = 12.706 at df 1 gives 0.05.
        assert!((t_two_sided(2.228, 10.0) - 0.05).abs() < 5e-4);
        assert!((t_two_sided(12.706, 1.0) - 0.05).abs() < 5e-4);
        assert!((t_two_sided(1.0, 1.0) - 0.5).abs() < 1e-9);
        assert!((t_two_sided(0.0, 7.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn paired_counts_wins_and_tests_the_mean_difference() {
        let p = paired(&[0.8, 0.7, 0.9, 0.6], &[0.7, 0.72, 0.8, 0.5]);
        assert_eq!((p.wins, p.ties, p.n), (3, 0, 4));
        let q = paired(&[0.5, 0.25, 0.0], &[0.5, 0.0, 0.25]);
        assert_eq!((q.wins, q.ties, q.n), (1, 1, 3));
        assert!((p.mean_diff - 0.07).abs() < 1e-12);
        // d = [0.1, -0.02, 0.1, 0.1]: mean 0.07, sd 0.06, t = 2.333 at df 3 → p ≈ 0.102.
        assert!((p.p_value - 0.102).abs() < 2e-3, "{}", p.p_value);
        assert_eq!(paired(&[0.5, 0.5], &[0.5, 0.5]).p_value, 1.0);
    }
}
