//! Ids that training never saw. A new campaign's own ids (its campaign, creative, product) and tokens
//! of users outside the training rows would otherwise keep their random initial rows, which then feed
//! both gates noise. Id dropout (`MetaConfig::id_dropout`) trains row 0 of the single-valued user
//! tables and of the ad tables as "an unseen value"; after training every row that no training row
//! touched is set to that learned row (multi-valued tables: to zero, so an unseen token adds nothing
//! to the masked mean — tokens outside the vocabulary are left out of it when data are read).

use crate::data::{Campaign, UserTable};
use crate::grads;
use crate::model::MetaHeac;
use burn::nn::Embedding;

/// Which rows of each embedding table training touched.
#[derive(Debug, Clone)]
pub struct Seen {
    pub single: Vec<Vec<bool>>,
    pub multi: Vec<Vec<bool>>,
    pub ad: Vec<Vec<bool>>,
}

impl Seen {
    /// The ids of the stage-1 rows and ad fields of `campaigns`, for a model shaped like `model`.
    pub fn of(model: &MetaHeac, users: &UserTable, campaigns: &[&Campaign]) -> Seen {
        let rows = |tables: &[Embedding]| -> Vec<Vec<bool>> {
            tables
                .iter()
                .map(|e| vec![false; e.weight.val().dims()[0]])
                .collect()
        };
        let mut seen = Seen {
            single: rows(&model.user_single),
            multi: rows(&model.user_multi),
            ad: rows(&model.ad),
        };
        let mut user_seen = vec![false; users.len()];
        for c in campaigns {
            for (f, &id) in c.ad.iter().enumerate() {
                mark(&mut seen.ad, f, id);
            }
            for r in &c.stage1 {
                user_seen[r.user as usize] = true;
            }
        }
        for (u, _) in user_seen.iter().enumerate().filter(|(_, s)| **s) {
            for (f, &id) in users.single_of(u).iter().enumerate() {
                mark(&mut seen.single, f, id);
            }
            for (f, id) in users.multi_tokens(u, &model.multi_lens) {
                mark(&mut seen.multi, f, id);
            }
        }
        seen
    }

    /// Rows never seen, over all tables (row 0 excluded).
    pub fn unseen(&self) -> usize {
        self.single
            .iter()
            .chain(&self.multi)
            .chain(&self.ad)
            .map(|t| t.iter().skip(1).filter(|s| !**s).count())
            .sum()
    }
}

fn mark(tables: &mut [Vec<bool>], f: usize, id: u32) {
    if let Some(s) = tables.get_mut(f).and_then(|t| t.get_mut(id as usize)) {
        *s = true;
    }
}

/// Sets every unseen row (row 0 excepted) to row 0 (`copy_unknown`) or to zero.
fn fill(e: Embedding, seen: &[bool], copy_unknown: bool) -> Embedding {
    if seen.iter().skip(1).all(|s| *s) {
        return e;
    }
    let d = e.weight.val().dims()[1];
    let weight = grads::rewrite(e.weight, |v| {
        let unknown: Vec<f32> = if copy_unknown {
            v[..d].to_vec()
        } else {
            vec![0.0; d]
        };
        for (row, _) in seen.iter().enumerate().skip(1).filter(|(_, s)| !**s) {
            v[row * d..(row + 1) * d].copy_from_slice(&unknown);
        }
    });
    Embedding { weight }
}

/// The model with every row that training never touched replaced by the learned unknown row.
pub fn fill_unseen(mut model: MetaHeac, seen: &Seen) -> MetaHeac {
    let fill_all = |tables: Vec<Embedding>, seen: &[Vec<bool>], copy: bool| -> Vec<Embedding> {
        tables
            .into_iter()
            .zip(seen)
            .map(|(e, s)| fill(e, s, copy))
            .collect()
    };
    model.user_single = fill_all(model.user_single, &seen.single, true);
    model.user_multi = fill_all(model.user_multi, &seen.multi, false);
    model.ad = fill_all(model.ad, &seen.ad, true);
    model
}
