//! The paper's metrics: AUC (Mann–Whitney, ties count ½), precision and recall at the top 5 % (ties at
//! the cutoff share its places), per campaign and aggregated per group (pooled AUC, mean campaign AUC,
//! mean P, mean R).

use serde::{Deserialize, Serialize};

/// AUC with average ranks for ties; `None` without both positives and negatives.
pub fn auc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    assert_eq!(labels.len(), scores.len());
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum_pos += avg * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let p = pos as f64;
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * neg as f64))
}

/// Indices of the top `k` scores: score descending, then index ascending (deterministic ties).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// k = floor(frac · n), at least 1 (the reference's k = 0 selects everything).
pub fn cutoff(n: usize, frac: f64) -> usize {
    ((n as f64 * frac).floor() as usize).max(1).min(n)
}

/// Precision and recall of the top `frac` of rows; `None` without positives.
///
/// Rows tied with the k-th score share its remaining places: they add their positives' share of them
/// (the expected hits when ties are broken at random), as AUC counts a tie ½. Breaking them by row
/// order would let the order of the candidates, not the scores, decide P@k wherever users' features
/// are identical (a world of a few coarse fields has many such users).
pub fn precision_recall_at(labels: &[bool], scores: &[f32], frac: f64) -> Option<(f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 || labels.is_empty() {
        return None;
    }
    let k = cutoff(labels.len(), frac);
    let kth = scores[*top_k(scores, k).last()?];
    let (mut above, mut hits_above, mut tied, mut hits_tied) = (0usize, 0usize, 0usize, 0usize);
    for (&s, &l) in scores.iter().zip(labels) {
        if s > kth {
            above += 1;
            hits_above += l as usize;
        } else if s == kth {
            tied += 1;
            hits_tied += l as usize;
        }
    }
    let hits = hits_above as f64 + (k - above) as f64 * hits_tied as f64 / tied as f64;
    Some((hits / k as f64, hits / pos as f64))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CampaignMetrics {
    pub aid: String,
    /// Stage-1 seeds the model was fine-tuned on.
    pub seeds: usize,
    /// Stage-2 rows scored.
    pub rows: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

impl CampaignMetrics {
    /// A NaN or infinite score is an error (it would make AUC and the top-k meaningless).
    pub fn new(
        aid: &str,
        seeds: usize,
        labels: &[bool],
        scores: &[f32],
        frac: f64,
    ) -> Result<Self, crate::finite::NonFinite> {
        crate::finite::check(scores, &format!("the score of campaign {aid}'s candidate"))?;
        let pr = precision_recall_at(labels, scores, frac);
        Ok(CampaignMetrics {
            aid: aid.to_string(),
            seeds,
            rows: labels.len(),
            positives: labels.iter().filter(|&&l| l).count(),
            auc: auc(labels, scores),
            precision: pr.map(|p| p.0),
            recall: pr.map(|p| p.1),
        })
    }
}

/// The smallest, median and largest of a count over campaigns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub min: usize,
    pub median: usize,
    pub max: usize,
}

impl Spread {
    /// `None` for no values; the median of an even count is the lower middle one.
    pub fn of(mut v: Vec<usize>) -> Option<Spread> {
        v.sort_unstable();
        Some(Spread {
            min: *v.first()?,
            median: v[(v.len() - 1) / 2],
            max: *v.last()?,
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}–{} (median {})", self.min, self.max, self.median)
        }
    }
}

/// What a group's campaigns in the means (stage 2 holds both labels) hold: how many candidates each
/// scores, how many of them are positive and how many the top fraction takes. A campaign with 3
/// positive candidates moves its AUC by a third at a time, and a top 5 % of one candidate makes its
/// precision 0 or 1: this says how far to trust a group's means.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestCampaigns {
    pub campaigns: usize,
    pub candidates: Option<Spread>,
    pub positives: Option<Spread>,
    pub top: Option<Spread>,
    /// Campaigns left out of the means (no positive or no negative candidate: no AUC), by aid.
    #[serde(default)]
    pub left_out: Vec<String>,
}

impl TestCampaigns {
    pub fn of(per_campaign: &[CampaignMetrics], frac: f64) -> TestCampaigns {
        // The campaigns [`GroupMetrics`] averages: those with an AUC.
        let kept: Vec<&CampaignMetrics> = per_campaign.iter().filter(|c| c.auc.is_some()).collect();
        TestCampaigns {
            campaigns: kept.len(),
            candidates: Spread::of(kept.iter().map(|c| c.rows).collect()),
            positives: Spread::of(kept.iter().map(|c| c.positives).collect()),
            top: Spread::of(kept.iter().map(|c| cutoff(c.rows, frac)).collect()),
            left_out: without_auc(per_campaign),
        }
    }

    /// One line for people: "cold 6 campaigns: 23–62 (median 25) candidates, …", and the
    /// campaigns the means leave out, by aid, so that a group smaller than the data's is explained.
    pub fn describe(&self, group: &str, frac: f64) -> String {
        let kept = self.describe_kept(group, frac);
        match self.left_out.len() {
            0 => kept,
            n => format!(
                "{kept} ({n} more left out, without a positive or without a negative candidate: aid {})",
                self.left_out.join(", ")
            ),
        }
    }

    fn describe_kept(&self, group: &str, frac: f64) -> String {
        match (&self.candidates, &self.positives, &self.top) {
            (Some(n), Some(pos), Some(top)) => format!(
                "{group} {} campaign{}: {n} candidates, {pos} positive, top {}% = {top}",
                self.campaigns,
                if self.campaigns == 1 { "" } else { "s" },
                frac * 100.0
            ),
            _ => format!("{group}: no campaign with both labels among its candidates"),
        }
    }

    /// The line `bench` and `eval` print under their tables.
    pub fn line(cold: &TestCampaigns, hot: &TestCampaigns, frac: f64) -> String {
        format!(
            "Test campaigns in the means: {}; {}.",
            cold.describe("cold", frac),
            hot.describe("hot", frac)
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupMetrics {
    /// AUC of all the group's rows pooled (the reference's "AUC").
    pub pooled_auc: Option<f64>,
    /// Unweighted mean of campaign AUCs (the reference's "GAUC").
    pub mean_auc: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Campaigns in the means.
    pub campaigns: usize,
    /// Campaigns left out of the means (no positives or no negatives in stage 2).
    pub skipped: Vec<String>,
    pub per_campaign: Vec<CampaignMetrics>,
}

/// The aids of the campaigns the means leave out: no positive or no negative candidate, so no AUC.
fn without_auc(per_campaign: &[CampaignMetrics]) -> Vec<String> {
    per_campaign
        .iter()
        .filter(|c| c.auc.is_none())
        .map(|c| c.aid.clone())
        .collect()
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl GroupMetrics {
    /// `pooled` holds every scored row of the group (labels, scores).
    pub fn new(
        per_campaign: Vec<CampaignMetrics>,
        pooled_labels: &[bool],
        pooled_scores: &[f32],
    ) -> Self {
        let kept: Vec<&CampaignMetrics> = per_campaign.iter().filter(|c| c.auc.is_some()).collect();
        GroupMetrics {
            pooled_auc: auc(pooled_labels, pooled_scores),
            mean_auc: mean(kept.iter().map(|c| c.auc)),
            precision: mean(kept.iter().map(|c| c.precision)),
            recall: mean(kept.iter().map(|c| c.recall)),
            campaigns: kept.len(),
            skipped: without_auc(&per_campaign),
            per_campaign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force Mann–Whitney: P(score_pos > score_neg) + ½ P(tie).
    fn auc_pairs(labels: &[bool], scores: &[f32]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..labels.len() {
            for j in 0..labels.len() {
                if labels[i] && !labels[j] {
                    den += 1.0;
                    num += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn auc_matches_pairwise_definition_with_ties() {
        let labels = [true, false, true, false, false, true, false, true];
        let scores = [0.9, 0.9, 0.3, 0.3, 0.1, 0.7, 0.8, 0.3];
        let a = auc(&labels, &scores).unwrap();
        assert!((a - auc_pairs(&labels, &scores)).abs() < 1e-12, "{a}");
        assert_eq!(auc(&[true, false], &[0.5, 0.5]), Some(0.5));
        assert_eq!(auc(&[true, false, false], &[0.2, 0.1, 0.1]), Some(1.0));
        assert_eq!(auc(&[true, true], &[0.2, 0.1]), None);
        assert_eq!(auc(&[false], &[0.2]), None);
    }

    #[test]
    fn precision_recall_top_five_percent() {
        // 40 rows → k = 2; the two best rows are one positive and one negative.
        let mut labels = vec![false; 40];
        let mut scores = vec![0.0f32; 40];
        labels[3] = true;
        labels[10] = true;
        scores[3] = 0.9;
        scores[7] = 0.8;
        scores[10] = 0.1;
        let (p, r) = precision_recall_at(&labels, &scores, 0.05).unwrap();
        assert_eq!((p, r), (0.5, 0.5));
        // Fewer than 20 rows: k is at least 1 (not "everything").
        let (p, r) = precision_recall_at(&[true, false, false], &[0.1, 0.5, 0.2], 0.05).unwrap();
        assert_eq!((p, r), (0.0, 0.0));
        assert_eq!(
            precision_recall_at(&[false, false], &[0.1, 0.2], 0.05),
            None
        );
    }

    #[test]
    fn non_finite_scores_are_refused() {
        let e = CampaignMetrics::new("7", 1, &[true, false], &[0.5, f32::NAN], 0.05).unwrap_err();
        assert!(e.to_string().contains("campaign 7"), "{e}");
        assert!(e.to_string().contains("NaN"), "{e}");
    }

    #[test]
    fn ties_at_the_cutoff_break_by_row_order() {
        assert_eq!(top_k(&[0.5, 0.7, 0.5, 0.5], 2), vec![1, 0]);
    }

    #[test]
    fn ties_at_the_cutoff_share_its_places() {
        // 40 rows, k = 2: one clear best (negative), then three tied at 0.5 of which one is positive.
        let mut labels = vec![false; 40];
        let mut scores = vec![0.0f32; 40];
        scores[0] = 0.9;
        for i in [5, 6, 7] {
            scores[i] = 0.5;
        }
        labels[7] = true;
        labels[30] = true;
        let (p, r) = precision_recall_at(&labels, &scores, 0.05).unwrap();
        // One place left for three tied rows, one of them positive: ⅓ of a hit.
        assert!((p - 1.0 / 6.0).abs() < 1e-12, "{p}");
        assert!((r - 1.0 / 6.0).abs() < 1e-12, "{r}");
        // The candidates' order does not matter: the positive first among the tied gives the same.
        labels.swap(7, 5);
        assert_eq!(precision_recall_at(&labels, &scores, 0.05).unwrap(), (p, r));
        // A constant scorer's P@k is the base rate, whatever the order.
        let (p, _) = precision_recall_at(&labels, &[0.3; 40], 0.05).unwrap();
        assert!((p - 2.0 / 40.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn group_means_skip_campaigns_without_positives() {
        let a = CampaignMetrics::new("a", 3, &[true, false], &[0.9, 0.1], 0.05).unwrap();
        let b = CampaignMetrics::new("b", 1, &[false, false], &[0.9, 0.1], 0.05).unwrap();
        let g = GroupMetrics::new(
            vec![a, b],
            &[true, false, false, false],
            &[0.9, 0.1, 0.9, 0.1],
        );
        assert_eq!(g.campaigns, 1);
        assert_eq!(g.skipped, vec!["b".to_string()]);
        assert_eq!(g.mean_auc, Some(1.0));
        assert_eq!(g.precision, Some(1.0));
        // Positive 0.9 vs negatives 0.1, 0.9 (tie: ½), 0.1.
        assert!((g.pooled_auc.unwrap() - 2.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn test_campaigns_count_what_the_means_keep() {
        let campaign = |candidates: usize, positives: usize| {
            let labels: Vec<bool> = (0..candidates).map(|i| i < positives).collect();
            let scores = vec![0.5; candidates];
            CampaignMetrics::new("c", 1, &labels, &scores, 0.05).unwrap()
        };
        let cs = [
            campaign(500, 2),
            campaign(40, 7),
            campaign(100, 0),
            campaign(3, 3),
            campaign(60, 5),
            campaign(500, 4),
        ];
        let t = TestCampaigns::of(&cs, 0.05);
        // No positive, or no negative: no AUC, so not in the means.
        assert_eq!(t.campaigns, 4);
        let spread = |min, median, max| Some(Spread { min, median, max });
        assert_eq!(t.candidates, spread(40, 60, 500));
        assert_eq!(t.positives, spread(2, 4, 7));
        // floor(5 % of n), at least 1: 40 → 2, 60 → 3, 500 → 25.
        assert_eq!(t.top, spread(2, 3, 25));
        assert_eq!(t.left_out.len(), 2);
        let named: Vec<CampaignMetrics> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| CampaignMetrics {
                aid: format!("a{i}"),
                ..c.clone()
            })
            .collect();
        assert_eq!(
            TestCampaigns::of(&named, 0.05).describe("cold", 0.05),
            "cold 4 campaigns: 40–500 (median 60) candidates, 2–7 (median 4) positive, top 5% = 2–25 (median 3) \
             (2 more left out, without a positive or without a negative candidate: aid a2, a3)"
        );
        let one = TestCampaigns::of(&cs[..1], 0.05);
        assert_eq!(
            one.describe("hot", 0.05),
            "hot 1 campaign: 500 candidates, 2 positive, top 5% = 25"
        );
        let none = TestCampaigns::of(&named[2..4], 0.05);
        assert_eq!(none.campaigns, 0);
        assert_eq!(
            none.describe("hot", 0.05),
            "hot: no campaign with both labels among its candidates \
             (2 more left out, without a positive or without a negative candidate: aid a2, a3)"
        );
    }
}
