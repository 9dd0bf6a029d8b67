//! Row-sparse embedding updates for meta-training: lazy Adam, as TensorFlow's `LazyAdam` and
//! PyTorch's `SparseAdam` do it.
//!
//! burn's embedding backward is dense: every inner step would build a gradient and fast weights the
//! size of every table, and Adam would update moments for every row, though a meta-batch touches a
//! few thousand rows. Here an iteration runs on a *compact* model whose tables hold only the rows its
//! batches touch (the batches' ids renumbered to match); the dense layers keep burn's optimizer, and
//! Adam updates the touched rows of a host copy of the tables, which is the truth while training
//! (written back into the model when asked for). All embedding fields live in one table with per-field
//! row offsets (one per width: the fields of width D, and the wide part's fields of width 1), so
//! renumbering and gathering are one pass over a batch's ids.
//!
//! The forward pass, the loss and every gradient are the dense ones; only Adam differs: rows a step
//! does not touch keep their moments and do not move, where dense Adam keeps moving them on their old
//! momentum. At the first step the two are the same.

use crate::data::Batch;
use crate::model::MetaHeac;
use burn::module::Param;
use burn::nn::Embedding;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

/// Adam's constants (those of `burn::optim::AdamConfig`, whose update this repeats row by row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl AdamConstants {
    /// burn's β defaults with the given ε.
    pub fn with_epsilon(epsilon: f32) -> Self {
        AdamConstants {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
        }
    }
}

/// Fields of one width in one table: values and Adam's two moments, row-major.
#[derive(Debug, Clone)]
struct Table {
    width: usize,
    /// First row of each field.
    offsets: Vec<usize>,
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Table {
    fn of(tables: &[&Embedding]) -> Table {
        let width = tables.first().map_or(1, |e| e.weight.val().dims()[1]);
        let (mut offsets, mut values) = (Vec::with_capacity(tables.len()), Vec::new());
        for e in tables {
            offsets.push(values.len() / width.max(1));
            values.extend(host(e));
        }
        let n = values.len();
        Table {
            width,
            offsets,
            values,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn load(&mut self, tables: &[&Embedding]) {
        self.values.clear();
        for e in tables {
            self.values.extend(host(e));
        }
    }

    /// The rows of field `field`, as row numbers of the whole table.
    fn rows(&self, field: usize) -> std::ops::Range<usize> {
        let end = self.offsets.get(field + 1).copied();
        self.offsets[field]..end.unwrap_or(self.values.len() / self.width.max(1))
    }

    /// The values of field `field`'s rows, as a range of `values`.
    fn rows_of(&self, field: usize) -> std::ops::Range<usize> {
        let rows = self.rows(field);
        rows.start * self.width..rows.end * self.width
    }

    /// The rows `ids` of field `field`, as a `[ids, width]` buffer.
    fn gather(&self, field: usize, ids: &[u32]) -> Vec<f32> {
        let w = self.width;
        let mut out = Vec::with_capacity(ids.len() * w);
        for &id in ids {
            let r = (self.offsets[field] + id as usize) * w;
            out.extend_from_slice(&self.values[r..r + w]);
        }
        out
    }

    /// One Adam step on the rows `ids[f]` of each field f, with their gradient `grads[f]` (`[ids,
    /// width]`; `None`: the field took none). A step's rows are scattered over tables of millions and
    /// the loop waits on memory, so the fields (disjoint rows) are stepped side by side on native
    /// builds, and each field's rows in address order.
    fn step(&mut self, ids: &[Vec<u32>], grads: Vec<Option<Vec<f32>>>, lr: f32, k: &StepConstants) {
        let w = self.width;
        let lens: Vec<usize> = (0..grads.len()).map(|f| self.rows_of(f).len()).collect();
        let (mut values, mut m, mut v) = (&mut self.values[..], &mut self.m[..], &mut self.v[..]);
        let mut fields = Vec::with_capacity(grads.len());
        for ((grad, len), f) in grads.into_iter().zip(lens).zip(0..) {
            let (field_values, rest) = std::mem::take(&mut values).split_at_mut(len);
            values = rest;
            let (field_m, rest) = std::mem::take(&mut m).split_at_mut(len);
            m = rest;
            let (field_v, rest) = std::mem::take(&mut v).split_at_mut(len);
            v = rest;
            if let Some(grad) = grad {
                let rows = FieldRows {
                    values: field_values,
                    m: field_m,
                    v: field_v,
                };
                fields.push((rows, &ids[f][..], grad));
            }
        }
        let adam =
            |(rows, ids, grad): (FieldRows, &[u32], Vec<f32>)| rows.adam(w, ids, &grad, lr, k);
        #[cfg(feature = "native")]
        {
            use rayon::prelude::*;
            fields.into_par_iter().with_max_len(1).for_each(adam);
        }
        #[cfg(not(feature = "native"))]
        fields.into_iter().for_each(adam);
    }
}

/// One field's rows of a [`Table`]: values and both moments.
struct FieldRows<'t> {
    values: &'t mut [f32],
    m: &'t mut [f32],
    v: &'t mut [f32],
}

impl FieldRows<'_> {
    /// Adam on rows `ids` (distinct) with their gradient `grad` (`[ids, width]`).
    fn adam(self, w: usize, ids: &[u32], grad: &[f32], lr: f32, k: &StepConstants) {
        let mut order: Vec<(u32, usize)> = ids.iter().copied().zip(0..).collect();
        order.sort_unstable();
        for (id, j) in order {
            let r = id as usize * w..(id as usize + 1) * w;
            // Whole rows as slices, so the loop has no bounds checks and vectorises.
            let row = self.values[r.clone()]
                .iter_mut()
                .zip(&mut self.m[r.clone()])
                .zip(&mut self.v[r]);
            for (((x, m), v), &g) in row.zip(&grad[j * w..(j + 1) * w]) {
                // The order of burn's Adam, so a row updated every step follows it exactly.
                *m = *m * k.beta_1 + g * (1.0 - k.beta_1);
                *v = *v * k.beta_2 + g * g * (1.0 - k.beta_2);
                let update = *m * k.combined / (v.sqrt() + k.epsilon);
                *x -= update * lr;
            }
        }
    }
}

/// Adam's factors at step t: m̂ / (√v̂ + ε) = m · √(1 − β₂ᵗ)/(1 − β₁ᵗ) / (√v + ε√(1 − β₂ᵗ)).
struct StepConstants {
    beta_1: f32,
    beta_2: f32,
    combined: f32,
    epsilon: f32,
}

/// The compact row of a table row whose slot is `slot`: the one it already has this step, or the next
/// row of `rows` (the field's touched ids, in compact order), which `id` then joins.
fn claim(slot: &mut u32, rows: &mut Vec<u32>, id: u32) -> u32 {
    if *slot == u32::MAX {
        *slot = rows.len() as u32;
        rows.push(id);
    }
    *slot
}

fn host(e: &Embedding) -> Vec<f32> {
    e.weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 embedding tables")
}

/// The rows a meta-batch touches: per embedding field (user single-valued, user multi-valued, ad, in
/// the model's order), the original ids in the order of the compact table's rows.
#[derive(Debug, Clone, Default)]
pub struct Touched {
    pub ids: Vec<Vec<u32>>,
}

/// The tables' gradients of a compact model, on the host: per field (in [`deep_tables`] order, and the
/// wide part's in its order), `[rows, width]` in the order of the [`Touched`] rows, or `None` where the
/// field took no gradient.
#[derive(Debug, Clone, Default)]
pub struct TableGrads {
    pub deep: Vec<Option<Vec<f32>>>,
    pub wide: Vec<Option<Vec<f32>>>,
}

/// The embedding tables of a model under training with lazy Adam (see the module's notes).
#[derive(Debug, Clone)]
pub struct SparseEmbeddings {
    /// User single-valued, user multi-valued and ad fields, width D.
    deep: Table,
    /// The wide part's fields (user single-valued, then multi-valued), width 1; `None` without it.
    wide: Option<Table>,
    single_fields: usize,
    multi_fields: usize,
    /// Compact row of each row of `deep` during [`Self::compact`] (`u32::MAX`: not touched).
    slot: Vec<u32>,
    adam: AdamConstants,
    /// Adam steps taken.
    time: u64,
}

fn deep_tables(m: &MetaHeac) -> Vec<&Embedding> {
    m.user_single
        .iter()
        .chain(&m.user_multi)
        .chain(&m.ad)
        .collect()
}

impl SparseEmbeddings {
    /// Takes `model`'s tables as the starting values, with zero moments.
    pub fn of(model: &MetaHeac, adam: AdamConstants) -> Self {
        let deep = Table::of(&deep_tables(model));
        let rows = deep.values.len() / deep.width.max(1);
        SparseEmbeddings {
            wide: (!model.wide.is_empty())
                .then(|| Table::of(&model.wide.iter().collect::<Vec<_>>())),
            deep,
            single_fields: model.user_single.len(),
            multi_fields: model.user_multi.len(),
            slot: vec![u32::MAX; rows],
            adam,
            time: 0,
        }
    }

    /// Replaces the values by `model`'s tables (the moments are kept).
    pub fn load(&mut self, model: &MetaHeac) {
        self.deep.load(&deep_tables(model));
        if let Some(w) = &mut self.wide {
            w.load(&model.wide.iter().collect::<Vec<_>>());
        }
    }

    /// Renumbers the ids of `batches` to rows of the compact tables and says which rows they are.
    pub fn compact(&mut self, batches: &mut [Batch]) -> Touched {
        let mut slot = std::mem::take(&mut self.slot);
        let touched = self.compact_into(&mut slot, batches);
        self.slot = slot;
        touched
    }

    /// [`Self::compact`] with a scratch of its own (empty at first; left ready for the next call), so
    /// that a batch can be renumbered while the tables are read elsewhere.
    pub fn compact_into(&self, slot: &mut Vec<u32>, batches: &mut [Batch]) -> Touched {
        let rows = self.deep.values.len() / self.deep.width.max(1);
        if slot.len() != rows {
            *slot = vec![u32::MAX; rows];
        }
        let fields = self.deep.offsets.len();
        let mut touched = Touched {
            ids: vec![Vec::new(); fields],
        };
        let (s, mf) = (self.single_fields, self.multi_fields);
        let deep = &self.deep;
        let mut renumber = |field: usize, id: &mut i64| {
            let rows = deep.rows(field);
            let row = rows.start + *id as usize;
            // What the dense embedding lookup would refuse (an id outside its table), refused here
            // too rather than read from the next field's rows.
            assert!(
                *id >= 0 && row < rows.end,
                "embedding field {field}: id {id} outside its {} rows",
                rows.len()
            );
            *id = i64::from(claim(&mut slot[row], &mut touched.ids[field], *id as u32));
        };
        for b in batches.iter_mut() {
            debug_assert_eq!((b.single_fields, b.multi_fields), (s, mf));
            for row in b.single.chunks_mut(s.max(1)) {
                for (f, id) in row.iter_mut().enumerate() {
                    renumber(f, id);
                }
            }
            // Which field each multi-valued slot belongs to.
            let slot_field: Vec<usize> = b
                .multi_lens
                .iter()
                .enumerate()
                .flat_map(|(f, &len)| std::iter::repeat_n(s + f, len))
                .collect();
            for row in b.multi.chunks_mut(b.multi_width.max(1)) {
                for (id, &f) in row.iter_mut().zip(&slot_field) {
                    renumber(f, id);
                }
            }
            for row in b.ad.chunks_mut(b.ad_fields.max(1)) {
                for (i, id) in row.iter_mut().enumerate() {
                    renumber(s + mf + i, id);
                }
            }
        }
        // Every slot back to "not touched", ready for the next call.
        for (f, ids) in touched.ids.iter().enumerate() {
            for &id in ids {
                slot[self.deep.offsets[f] + id as usize] = u32::MAX;
            }
        }
        touched
    }

    /// `general` with its tables cut down to the `touched` rows (current values), each a leaf that
    /// records its gradient, keeping its parameter id.
    pub fn model(&self, general: &MetaHeac, touched: &Touched) -> MetaHeac {
        let mut m = general.clone();
        self.set_tables(&mut m, |t, f| t.gather(f, &touched.ids[f]));
        m
    }

    /// Takes the tables' gradients out of `grads` (those of `work`, the model of [`Self::model`]) and
    /// applies Adam to the touched rows. What is left in `grads` is for the dense layers.
    pub fn step(
        &mut self,
        lr: f64,
        work: &MetaHeac,
        touched: &Touched,
        grads: &mut GradientsParams,
    ) {
        let g = Self::take_grads(work, grads);
        self.step_rows(lr, touched, g);
    }

    /// The tables' gradients of `work` (a model of [`Self::model`]), taken out of `grads` to the host;
    /// what is left is for the dense layers.
    pub fn take_grads(work: &MetaHeac, grads: &mut GradientsParams) -> TableGrads {
        let mut take = |e: &Embedding| -> Option<Vec<f32>> {
            grads
                .remove::<2>(e.weight.id)
                .map(|g| g.into_data().try_to_vec::<f32>().expect("f32 gradients"))
        };
        TableGrads {
            deep: deep_tables(work).into_iter().map(&mut take).collect(),
            wide: work.wide.iter().map(&mut take).collect(),
        }
    }

    /// The sum, in the order given, of the gradients of several compact models (one per task of a
    /// meta-batch), as the gradient of one compact model over the union of their rows: a row's
    /// gradient is the sum of those of the tasks that touch it, added in task order, as a sum of the
    /// union model's gradients would add them (the others add an exact zero).
    pub fn merge(&mut self, parts: Vec<(Touched, TableGrads)>) -> (Touched, TableGrads) {
        let fields = self.deep.offsets.len();
        let wide_fields = parts.first().map_or(0, |p| p.1.wide.len());
        let d = self.deep.width;
        // Fields own disjoint rows (and slots), so they merge side by side on native builds; within
        // a field the tasks are added in task order, as before.
        let mut slots = Vec::with_capacity(fields);
        let mut rest = &mut self.slot[..];
        for f in 0..fields {
            let (slot, tail) = std::mem::take(&mut rest).split_at_mut(self.deep.rows(f).len());
            slots.push((f, slot));
            rest = tail;
        }
        let parts = &parts;
        let merge_field = |(f, slot): (usize, &mut [u32])| {
            let mut ids = Vec::new();
            let mut deep: Option<Vec<f32>> = None;
            let mut wide: Option<Vec<f32>> = None;
            for (touched, grads) in parts {
                let g_deep = grads.deep[f].as_deref();
                let g_wide = grads.wide.get(f).and_then(|g| g.as_deref());
                for (j, &id) in touched.ids[f].iter().enumerate() {
                    let u = claim(&mut slot[id as usize], &mut ids, id) as usize;
                    if let Some(g) = g_deep {
                        let acc = deep.get_or_insert_with(Vec::new);
                        if acc.len() < (u + 1) * d {
                            acc.resize((u + 1) * d, 0.0);
                        }
                        for (a, &x) in acc[u * d..(u + 1) * d]
                            .iter_mut()
                            .zip(&g[j * d..(j + 1) * d])
                        {
                            *a += x;
                        }
                    }
                    if let Some(g) = g_wide {
                        let acc = wide.get_or_insert_with(Vec::new);
                        if acc.len() < u + 1 {
                            acc.resize(u + 1, 0.0);
                        }
                        acc[u] += g[j];
                    }
                }
            }
            // Every row of the union, including those only tasks without a gradient touched.
            if let Some(acc) = &mut deep {
                acc.resize(ids.len() * d, 0.0);
            }
            if let Some(acc) = &mut wide {
                acc.resize(ids.len(), 0.0);
            }
            // Released, ready for the next step.
            for &id in &ids {
                slot[id as usize] = u32::MAX;
            }
            (ids, deep, wide)
        };
        #[cfg(feature = "native")]
        let merged: Vec<_> = {
            use rayon::prelude::*;
            slots
                .into_par_iter()
                .with_max_len(1)
                .map(merge_field)
                .collect()
        };
        #[cfg(not(feature = "native"))]
        let merged: Vec<_> = slots.into_iter().map(merge_field).collect();
        let mut union = Touched {
            ids: Vec::with_capacity(fields),
        };
        let mut deep = Vec::with_capacity(fields);
        let mut wide = Vec::with_capacity(wide_fields);
        for (f, (ids, d, w)) in merged.into_iter().enumerate() {
            union.ids.push(ids);
            deep.push(d);
            if f < wide_fields {
                wide.push(w);
            }
        }
        (union, TableGrads { deep, wide })
    }

    /// Adam on the `touched` rows with their gradients `grads` (rows in `touched`'s order).
    pub fn step_rows(&mut self, lr: f64, touched: &Touched, grads: TableGrads) {
        self.time += 1;
        let t = self.time.min(i32::MAX as u64) as i32;
        let a = self.adam;
        let bias2 = (1.0 - a.beta_2.powi(t)).sqrt();
        let k = StepConstants {
            beta_1: a.beta_1,
            beta_2: a.beta_2,
            combined: bias2 / (1.0 - a.beta_1.powi(t)),
            epsilon: a.epsilon * bias2,
        };
        let lr = lr as f32;
        self.deep.step(&touched.ids, grads.deep, lr, &k);
        if let Some(w) = &mut self.wide {
            w.step(&touched.ids, grads.wide, lr, &k);
        }
    }

    /// `model` with its tables set to the current values (ids kept).
    pub fn write_into(&self, mut model: MetaHeac) -> MetaHeac {
        self.set_tables(&mut model, |t, f| t.values[t.rows_of(f)].to_vec());
        model
    }

    /// Sets each table of `m` to `values(table, field)`, a `[rows, width]` buffer (ids kept). Field f
    /// of the deep table is `m`'s f-th table in [`deep_tables`] order; field f of the wide one is
    /// `m.wide[f]`.
    fn set_tables(&self, m: &mut MetaHeac, values: impl Fn(&Table, usize) -> Vec<f32>) {
        let set = |e: &mut Embedding, t: &Table, f: usize| {
            e.weight = with_values(e.weight.clone(), values(t, f), t.width);
        };
        let deep = m
            .user_single
            .iter_mut()
            .chain(&mut m.user_multi)
            .chain(&mut m.ad);
        for (f, e) in deep.enumerate() {
            set(e, &self.deep, f);
        }
        if let Some(w) = &self.wide {
            for (f, e) in m.wide.iter_mut().enumerate() {
                set(e, w, f);
            }
        }
    }

    /// Adam's state (step count and both moments) for a checkpoint.
    pub fn state_bytes(&self) -> Vec<u8> {
        let tables: Vec<&Table> = std::iter::once(&self.deep).chain(&self.wide).collect();
        let floats: usize = tables.iter().map(|t| 2 * t.m.len()).sum();
        let mut out = Vec::with_capacity(16 + 4 * floats);
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&(floats as u64).to_le_bytes());
        for t in tables {
            for x in t.m.iter().chain(&t.v) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    /// Restores what [`Self::state_bytes`] saved, for tables of this shape.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        let floats: usize = std::iter::once(&self.deep)
            .chain(&self.wide)
            .map(|t| 2 * t.m.len())
            .sum();
        let word =
            |i: usize| -> u64 { u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes")) };
        if bytes.len() != 16 + 4 * floats || word(8) != floats as u64 {
            return Err(format!(
                "the embedding tables' Adam state holds {} bytes, not the {} of this model's tables",
                bytes.len(),
                16 + 4 * floats
            ));
        }
        self.time = word(0);
        let mut xs = bytes[16..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        let tables = std::iter::once(&mut self.deep).chain(self.wide.as_mut());
        for t in tables {
            for x in t.m.iter_mut().chain(t.v.iter_mut()) {
                *x = xs.next().expect("length checked");
            }
        }
        Ok(())
    }
}

/// `p` (same id) holding `values` as a `[rows, width]` leaf on its device, recording gradients exactly
/// when `p` did.
fn with_values(p: Param<Tensor<2>>, values: Vec<f32>, width: usize) -> Param<Tensor<2>> {
    p.map(|t| {
        let (device, require_grad) = (t.device(), t.is_require_grad());
        let rows = values.len() / width.max(1);
        Tensor::from_data(TensorData::new(values, [rows, width]), &device)
            .set_require_grad(require_grad)
    })
}
