//! Host-side tables the model consumes: users (feature ids), campaigns (ad ids and labelled rows),
//! and the [`Batch`] gathered from them. Rows point at users, so a user's features are stored once
//! however many campaigns it appears in.

use crate::schema::Schema;
use serde::{Deserialize, Serialize};

/// Feature ids of a set of users, column-major by field and row-major by user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserTable {
    /// Raw user ids, in table order.
    pub uids: Vec<u64>,
    /// `[n × single_fields]` ids.
    pub single: Vec<u32>,
    /// `[n × multi_width]` ids, each field's slots padded with 0.
    pub multi: Vec<u32>,
    /// `[n × multi_fields]` token counts (already clipped to each field's max length).
    pub lens: Vec<u8>,
    pub single_fields: usize,
    pub multi_width: usize,
    pub multi_fields: usize,
}

impl UserTable {
    pub fn new(schema: &Schema) -> Self {
        UserTable {
            single_fields: schema.user_single.len(),
            multi_width: schema.multi_width(),
            multi_fields: schema.user_multi.len(),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.uids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }

    pub fn single_of(&self, u: usize) -> &[u32] {
        &self.single[u * self.single_fields..(u + 1) * self.single_fields]
    }

    pub fn multi_of(&self, u: usize) -> &[u32] {
        &self.multi[u * self.multi_width..(u + 1) * self.multi_width]
    }

    pub fn lens_of(&self, u: usize) -> &[u8] {
        &self.lens[u * self.multi_fields..(u + 1) * self.multi_fields]
    }

    /// The tokens of user `u`'s multi-valued fields as (field, id), each field holding at most its
    /// `max_lens` slot count.
    pub fn multi_tokens<'s>(
        &'s self,
        u: usize,
        max_lens: &'s [usize],
    ) -> impl Iterator<Item = (usize, u32)> + 's {
        let (multi, lens) = (self.multi_of(u), self.lens_of(u));
        let mut start = 0;
        max_lens.iter().enumerate().flat_map(move |(f, &max)| {
            let len = (lens[f] as usize).min(max);
            let ids = &multi[start..start + len];
            start += max;
            ids.iter().map(move |&id| (f, id))
        })
    }

    /// Appends one user. Slices must have the table's widths.
    /// Keeps the first `n` users.
    pub fn truncate(&mut self, n: usize) {
        self.uids.truncate(n);
        self.single.truncate(n * self.single_fields);
        self.multi.truncate(n * self.multi_width);
        self.lens.truncate(n * self.multi_fields);
    }

    pub fn push(&mut self, uid: u64, single: &[u32], multi: &[u32], lens: &[u8]) {
        debug_assert_eq!(single.len(), self.single_fields);
        debug_assert_eq!(multi.len(), self.multi_width);
        debug_assert_eq!(lens.len(), self.multi_fields);
        self.uids.push(uid);
        self.single.extend_from_slice(single);
        self.multi.extend_from_slice(multi);
        self.lens.extend_from_slice(lens);
    }
}

/// One labelled row: a user (index into the [`UserTable`]) and whether it converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub user: u32,
    pub label: bool,
}

/// Where a campaign is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Meta-training task (stage-1 rows only).
    Train,
    /// Test campaign with few seeds (≤ T).
    Cold,
    /// Test campaign with many seeds (> T).
    Hot,
}

/// A campaign (task): its ad-field ids and its stage-1 (seeds + non-seeds) and stage-2 (candidates) rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub aid: String,
    pub ad: Vec<u32>,
    pub role: Role,
    pub stage1: Vec<Row>,
    pub stage2: Vec<Row>,
}

impl Campaign {
    pub fn seeds(&self) -> usize {
        self.stage1.iter().filter(|r| r.label).count()
    }
}

/// A mini-batch ready for the model: ids, masks and labels as flat host vectors.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub rows: usize,
    /// `[rows × single_fields]`
    pub single: Vec<i64>,
    /// `[rows × multi_width]`
    pub multi: Vec<i64>,
    /// `[rows × multi_width]`: 1 where a slot holds a real token.
    pub mask: Vec<f32>,
    /// `[rows × multi_width]`: 1 where a slot holds a real token not listed earlier in its field, so
    /// the wide part counts each token once, as the one-hot regression it is fitted as does.
    pub distinct: Vec<f32>,
    /// `[rows × multi_fields]`: 1 / max(len, 1), the masked mean's divisor.
    pub inv_len: Vec<f32>,
    /// `[rows × ad_fields]`
    pub ad: Vec<i64>,
    pub labels: Vec<f32>,
    pub single_fields: usize,
    pub multi_width: usize,
    pub multi_fields: usize,
    pub ad_fields: usize,
    /// Each multi field's max length, to slice `multi` per field.
    pub multi_lens: Vec<usize>,
}

impl Batch {
    /// Gathers `rows` of one campaign (all rows share its ad ids).
    pub fn gather(users: &UserTable, max_lens: &[usize], ad: &[u32], rows: &[Row]) -> Batch {
        let n = rows.len();
        let mut b = Batch {
            rows: n,
            single_fields: users.single_fields,
            multi_width: users.multi_width,
            multi_fields: users.multi_fields,
            ad_fields: ad.len(),
            multi_lens: max_lens.to_vec(),
            ..Default::default()
        };
        b.single.reserve(n * users.single_fields);
        b.multi.reserve(n * users.multi_width);
        b.mask.reserve(n * users.multi_width);
        b.distinct.reserve(n * users.multi_width);
        b.inv_len.reserve(n * users.multi_fields);
        b.ad.reserve(n * ad.len());
        for r in rows {
            let u = r.user as usize;
            b.single
                .extend(users.single_of(u).iter().map(|&x| x as i64));
            let multi = users.multi_of(u);
            b.multi.extend(multi.iter().map(|&x| x as i64));
            let mut start = 0;
            for (&len, &max) in users.lens_of(u).iter().zip(max_lens) {
                let len = (len as usize).min(max);
                let ids = &multi[start..start + max];
                b.mask
                    .extend((0..max).map(|p| if p < len { 1.0 } else { 0.0 }));
                b.distinct.extend((0..max).map(|p| {
                    if p < len && !ids[..p].contains(&ids[p]) {
                        1.0
                    } else {
                        0.0
                    }
                }));
                b.inv_len.push(1.0 / len.max(1) as f32);
                start += max;
            }
            b.ad.extend(ad.iter().map(|&x| x as i64));
            b.labels.push(if r.label { 1.0 } else { 0.0 });
        }
        b
    }

    /// Id dropout: each single-valued user id and each ad id is replaced by 0 (unknown) with
    /// probability `p`, so the unknown rows of those tables learn what an unseen value means.
    pub fn drop_ids(&mut self, p: f64, rng: &mut impl rand::Rng) {
        use rand::RngExt;
        if p <= 0.0 {
            return;
        }
        for id in self.single.iter_mut().chain(self.ad.iter_mut()) {
            if rng.random::<f64>() < p {
                *id = 0;
            }
        }
    }

    /// Concatenates batches (e.g. the rows of several campaigns).
    pub fn concat(parts: &[Batch]) -> Batch {
        let mut out = parts.first().cloned().unwrap_or_default();
        for p in parts.iter().skip(1) {
            out.rows += p.rows;
            out.single.extend_from_slice(&p.single);
            out.multi.extend_from_slice(&p.multi);
            out.mask.extend_from_slice(&p.mask);
            out.distinct.extend_from_slice(&p.distinct);
            out.inv_len.extend_from_slice(&p.inv_len);
            out.ad.extend_from_slice(&p.ad);
            out.labels.extend_from_slice(&p.labels);
        }
        out
    }
}
