//! Scoring a pool with the model's first layers folded into its embedding tables.
//!
//! Everything the experts' first layer and both gates' hidden layers see of a user is linear in the
//! user-field embeddings: with x = [e_1 ‖ … ‖ e_F] and the gates' field mean (1/F) Σ_f e_f,
//!
//! ```text
//!   x W = Σ_f e_f W_f,    and for a multi-valued field  e_f W_f = (1/len) Σ_t (E_f W_f)[t],
//! ```
//!
//! where W_f is field f's `D` rows of the experts' first layers side by side (`[D, n·h]`) beside the
//! gates' field-mean rows divided by F (`[D, g]` each), and E_f its embedding table. A campaign fixes
//! the ad fields, so the gates' ad part is a constant. Multiplying a field's table by W_f once per
//! campaign (P_f = E_f W_f, `[V_f, n·h + 2g]`) turns the 896 × 640 multiply-adds per user of the
//! default model's first layers into the sum of a few rows of P_f; the layers after it run as in
//! [`MetaHeac::forward`]. A folded table is (n·h + 2g) / D = 10 times the embedding table's size, so
//! only tables within [`FOLD_BUDGET`] are folded, smallest first; the other fields are pooled on the
//! host and multiplied by their rows of W in one product. The scores equal the forward pass's up to the
//! order of summation (checked in tests to 1e-5).

use crate::data::{Row, UserTable};
use crate::expansion::{SCORE_BATCH, score_async, score_blocks};
use crate::finetune::f32s;
use crate::finite::{self, NonFinite};
use crate::model::{GateContext, MetaHeac, critic_mixture, experts_later_layers, linear_flops};
use burn::module::Module;
use burn::tensor::activation::{log_softmax, relu, sigmoid};
use burn::tensor::{Tensor, TensorData};

/// Bytes of folded tables a campaign's scorer may hold: the small tables (demographics, interests,
/// a few hundred rows each) fold into a few MB that stay in the CPU's caches; a table of tens of
/// thousands of tokens would not, and reading its 2.5 kB rows from memory costs about what the product
/// it replaces does.
pub const FOLD_BUDGET: usize = 16 << 20;

/// Users per pass. Every pass has exactly this many rows (the last padded), so the products' blocking,
/// and with it every user's score, does not depend on which users share the pass.
pub const PASS: usize = 1024;

/// How one user field reaches the first layers.
enum Field {
    /// Folded: `[V, width]` rows of P_f = E_f W_f.
    Folded(Vec<f32>),
    /// Pooled on the host into `D` columns of the pooled block at `column`, then multiplied by W.
    Pooled { table: Vec<f32>, column: usize },
}

/// A campaign's model prepared for ranking pools of any size: folded (see the module's description)
/// where the model has a first layer to fold, otherwise the forward pass in fixed-size blocks
/// ([`score_blocks`]).
pub struct PoolScorer {
    ad: Vec<u32>,
    how: How,
}

enum How {
    Folded(Box<Folded>),
    Forward(Box<MetaHeac>),
}

impl PoolScorer {
    /// `model` prepared for the campaign `ad`, within [`FOLD_BUDGET`].
    pub fn new(model: &MetaHeac, ad: &[u32]) -> PoolScorer {
        Self::with_budget(model, ad, FOLD_BUDGET)
    }

    /// [`PoolScorer::new`] with another budget for the folded tables (0: every field pooled).
    pub fn with_budget(model: &MetaHeac, ad: &[u32], budget: usize) -> PoolScorer {
        let how = match Folded::plan(model, ad, budget) {
            Some((mut f, reads)) => {
                f.fill(reads.into_iter().map(host).collect());
                How::Folded(Box::new(f))
            }
            None => How::Forward(Box::new(model.valid())),
        };
        PoolScorer {
            ad: ad.to_vec(),
            how,
        }
    }

    /// [`PoolScorer::new`] with asynchronous read-back (required on WebGPU in a browser).
    pub async fn new_async(model: &MetaHeac, ad: &[u32]) -> Result<PoolScorer, String> {
        let how = match Folded::plan(model, ad, FOLD_BUDGET) {
            Some((mut f, reads)) => {
                let mut back = Vec::with_capacity(reads.len());
                for t in reads {
                    back.push(host_async(t).await?);
                }
                f.fill(back);
                How::Folded(Box::new(f))
            }
            None => How::Forward(Box::new(model.valid())),
        };
        Ok(PoolScorer {
            ad: ad.to_vec(),
            how,
        })
    }

    /// How many user fields are folded (the others are pooled and multiplied; none without folding).
    pub fn folded_fields(&self) -> usize {
        match &self.how {
            How::Folded(f) => f
                .fields
                .iter()
                .filter(|f| matches!(f, Field::Folded(_)))
                .count(),
            How::Forward(_) => 0,
        }
    }

    /// Floating-point operations of the products run per user (a multiply-add is two): with the first
    /// layers folded, the pooled fields' product, the experts' later layers, the gates' output layers
    /// and the critics ([`MetaHeac::flops_per_user`] counts the model's). The sums of folded rows are
    /// not counted.
    pub fn executed_flops_per_user(&self) -> f64 {
        match &self.how {
            How::Forward(model) => model.flops_per_user(),
            How::Folded(f) => {
                let m = &f.model;
                2.0 * (f.pooled_width * f.width) as f64
                    + m.experts
                        .iter()
                        .flat_map(|e| e.layers.iter().skip(1))
                        .map(linear_flops)
                        .sum::<f64>()
                    + linear_flops(&m.expert_gate.out)
                    + linear_flops(&m.critic_gate.out)
                    + m.critics.iter().map(linear_flops).sum::<f64>()
            }
        }
    }

    /// Scores of every user of `table`, in the table's order, checked finite.
    pub fn score(&self, table: &UserTable) -> Result<Vec<f32>, NonFinite> {
        let users: Vec<u32> = (0..table.len() as u32).collect();
        self.score_users(table, &users)
    }

    /// Scores of `users` (indices into `table`), checked finite. Folded: passes of exactly [`PASS`]
    /// users (the last padded by repeating its last user), side by side on the cores, so a user's score
    /// does not depend on which users share its pass.
    pub fn score_users(&self, table: &UserTable, users: &[u32]) -> Result<Vec<f32>, NonFinite> {
        let s = match &self.how {
            How::Forward(model) => return score_blocks(model, table, &self.ad, &rows_of(users)),
            How::Folded(f) => {
                let padded = padded(users);
                let passes: Vec<&[u32]> = padded.chunks(PASS).collect();
                let threads = crate::meta::threads(0);
                let mut s = crate::meta::per_task(passes.len(), threads, |i| {
                    host(f.pass(table, passes[i]))
                })
                .concat();
                s.truncate(users.len());
                s
            }
        };
        finite::check(&s, "a candidate's score")?;
        Ok(s)
    }

    /// [`PoolScorer::score_users`] with asynchronous read-back, one pass at a time.
    pub async fn score_users_async(
        &self,
        table: &UserTable,
        users: &[u32],
    ) -> Result<Vec<f32>, String> {
        let s = match &self.how {
            How::Forward(model) => {
                return score_async(model, table, &self.ad, &rows_of(users), SCORE_BATCH).await;
            }
            How::Folded(f) => {
                let mut s = Vec::with_capacity(users.len());
                for pass in padded(users).chunks(PASS) {
                    s.extend(host_async(f.pass(table, pass)).await?);
                }
                s.truncate(users.len());
                s
            }
        };
        finite::check(&s, "a candidate's score").map_err(|e| e.to_string())?;
        Ok(s)
    }
}

fn rows_of(users: &[u32]) -> Vec<Row> {
    users
        .iter()
        .map(|&user| Row { user, label: false })
        .collect()
}

/// `users` padded to whole passes by repeating the last.
fn padded(users: &[u32]) -> Vec<u32> {
    let mut p = users.to_vec();
    if let Some(&last) = users.last() {
        p.resize(users.len().div_ceil(PASS) * PASS, last);
    }
    p
}

/// What the host gathers for a pass of n users.
struct Gathered {
    /// The first layers' pre-activations of the folded fields, `[n, width]`.
    pre: Vec<f32>,
    /// The pooled fields' embeddings, `[n, pooled · D]`.
    pooled: Vec<f32>,
    /// The wide logits, `[n]`.
    wide: Vec<f32>,
}

/// The model with its first layers folded for one campaign.
struct Folded {
    model: MetaHeac,
    /// Columns of the first layers' pre-activations: n·h (experts) + g (expert gate) + g (critic gate).
    width: usize,
    experts_width: usize,
    gate_hidden: usize,
    dim: usize,
    /// The pre-activations' constant part: the experts' first biases, both gates' hidden layer on the
    /// campaign's ad fields (with their biases).
    base: Vec<f32>,
    /// Singles, then multi-valued fields, as in x.
    fields: Vec<Field>,
    /// W's rows of the pooled fields, `[pooled · D, width]`.
    rest: Option<Tensor<2>>,
    pooled_width: usize,
    /// The wide part's weight per token, per field (empty without the wide part), and its scale `s`.
    wide: Vec<Vec<f32>>,
    wide_scale: f32,
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    f32s(t.into_data())
}

async fn host_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| format!("reading back a folded model: {e:?}"))?;
    Ok(f32s(data))
}

impl Folded {
    /// Folds `model` for the campaign `ad` within `budget` bytes of folded tables; `None` where the
    /// model has no first layer to fold (experts without layers). What is to be read back from the
    /// device comes beside the model, in [`Folded::fill`]'s order, so a synchronous and an
    /// asynchronous read-back share this body.
    fn plan(model: &MetaHeac, ad: &[u32], budget: usize) -> Option<(Folded, Vec<Tensor<2>>)> {
        let model = model.valid();
        let first: Vec<_> = model
            .experts
            .iter()
            .map(|e| e.layers.first())
            .collect::<Option<_>>()?;
        let device = model.device();
        let tables: Vec<Tensor<2>> = model
            .user_single
            .iter()
            .chain(&model.user_multi)
            .map(|e| e.weight.val())
            .collect();
        let n_fields = tables.len();
        let dim = tables[0].dims()[1];
        let gate_hidden = model.expert_gate.hidden.weight.val().dims()[1];
        // The experts' first layers side by side, [F·D, n·h].
        let experts_w = Tensor::cat(first.iter().map(|l| l.weight.val()).collect(), 1);
        let experts_width = experts_w.dims()[1];
        let width = experts_width + 2 * gate_hidden;
        // A gate's hidden weights on the field mean, divided by F: each field's share.
        let mean_rows = |w: Tensor<2>| match model.gate_context {
            GateContext::FieldMean => w.narrow(0, 0, dim).div_scalar(n_fields as f32),
            GateContext::None => Tensor::zeros([dim, gate_hidden], &device),
        };
        let gate_e = mean_rows(model.expert_gate.hidden.weight.val());
        let gate_c = mean_rows(model.critic_gate.hidden.weight.val());
        let w_of = |f: usize| {
            Tensor::cat(
                vec![
                    experts_w.clone().narrow(0, f * dim, dim),
                    gate_e.clone(),
                    gate_c.clone(),
                ],
                1,
            )
        };

        // Smallest tables first, while the folded bytes stay within the budget.
        let mut order: Vec<usize> = (0..n_fields).collect();
        order.sort_by_key(|&f| tables[f].dims()[0]);
        let mut fold = vec![false; n_fields];
        let mut spent = 0;
        for f in order {
            let bytes = tables[f].dims()[0] * width * 4;
            if spent + bytes > budget {
                break;
            }
            spent += bytes;
            fold[f] = true;
        }
        let mut rest = Vec::new();
        let mut fields = Vec::with_capacity(n_fields);
        let mut reads = Vec::new();
        for (f, table) in tables.into_iter().enumerate() {
            if fold[f] {
                fields.push(Field::Folded(Vec::new()));
                reads.push(table.matmul(w_of(f)));
            } else {
                fields.push(Field::Pooled {
                    table: Vec::new(),
                    column: rest.len() * dim,
                });
                reads.push(table);
                rest.push(w_of(f));
            }
        }
        let pooled_width = rest.len() * dim;
        let rest = (!rest.is_empty()).then(|| Tensor::cat(rest, 0));

        // The gates' hidden layer on the campaign's ad fields alone (the field mean's part is folded).
        let mut t_parts = Vec::new();
        if model.gate_context == GateContext::FieldMean {
            t_parts.push(Tensor::zeros([1, dim], &device));
        }
        for (table, &id) in model.ad.iter().zip(ad) {
            t_parts.push(table.weight.val().narrow(0, id as usize, 1));
        }
        let t = Tensor::cat(t_parts, 1);
        let experts_b: Vec<Tensor<2>> = first
            .iter()
            .map(|l| match &l.bias {
                Some(b) => b.val().unsqueeze_dim::<2>(0),
                None => Tensor::zeros([1, l.weight.val().dims()[1]], &device),
            })
            .collect();
        reads.push(Tensor::cat(
            vec![
                Tensor::cat(experts_b, 1),
                model.expert_gate.hidden.forward(t.clone()),
                model.critic_gate.hidden.forward(t),
            ],
            1,
        ));
        reads.extend(model.wide.iter().map(|e| e.weight.val()));
        reads.push(match &model.wide_scale {
            Some(s) => s.val().unsqueeze_dim::<2>(0),
            None => Tensor::ones([1, 1], &device),
        });
        let wide = vec![Vec::new(); model.wide.len()];
        let folded = Folded {
            model,
            width,
            experts_width,
            gate_hidden,
            dim,
            base: Vec::new(),
            fields,
            rest,
            pooled_width,
            wide,
            wide_scale: 1.0,
        };
        Some((folded, reads))
    }

    /// Takes what [`Folded::plan`] asked for, read back to the host, in its order: per user field its
    /// folded or embedding table, the constant part, the wide tables, the wide scale.
    fn fill(&mut self, host: Vec<Vec<f32>>) {
        let mut host = host.into_iter();
        let mut next = || host.next().expect("one read-back per planned tensor");
        for field in &mut self.fields {
            match field {
                Field::Folded(rows) => *rows = next(),
                Field::Pooled { table, .. } => *table = next(),
            }
        }
        self.base = next();
        for weights in &mut self.wide {
            *weights = next();
        }
        self.wide_scale = next()[0];
    }

    /// Scores of `users` (indices into `table`), one pass of any size, not yet read back
    /// ([`PoolScorer::score_users`] cuts a pool into passes of [`PASS`]).
    fn pass(&self, table: &UserTable, users: &[u32]) -> Tensor<1> {
        let n = users.len();
        let mut out = Gathered {
            pre: Vec::with_capacity(n * self.width),
            pooled: vec![0f32; n * self.pooled_width],
            wide: vec![0f32; n],
        };
        self.gather_dispatch(table, users, &mut out);
        self.tail(out, n)
    }

    /// [`Folded::gather`] compiled for the widest vectors the CPU has. Every sum is element-wise, so
    /// the width does not change a result.
    fn gather_dispatch(&self, table: &UserTable, users: &[u32], out: &mut Gathered) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked on the line above).
                return unsafe { self.gather_avx512(table, users, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked on the line above).
                return unsafe { self.gather_avx2(table, users, out) };
            }
        }
        self.gather(table, users, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn gather_avx512(&self, table: &UserTable, users: &[u32], out: &mut Gathered) {
        self.gather(table, users, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn gather_avx2(&self, table: &UserTable, users: &[u32], out: &mut Gathered) {
        self.gather(table, users, out)
    }

    /// The host's part of a pass: per user, the first layers' pre-activations from the folded fields
    /// (the constant part plus a row of P_f per token, a multi-valued field's rows averaged), the
    /// pooled fields' embeddings (masked means, as [`MetaHeac::forward`] takes them) and the wide logit.
    #[inline(always)]
    fn gather(&self, table: &UserTable, users: &[u32], out: &mut Gathered) {
        let (w, d) = (self.width, self.dim);
        let mut sum = vec![0f32; w.max(d)];
        let singles = table.single_fields;
        let lens = &self.model.multi_lens;
        for (i, &u) in users.iter().enumerate() {
            let u = u as usize;
            out.pre.extend_from_slice(&self.base);
            let row = &mut out.pre[i * w..(i + 1) * w];
            let pooled_row = &mut out.pooled[i * self.pooled_width..(i + 1) * self.pooled_width];
            let wide = &mut out.wide[i];
            for (f, &id) in table.single_of(u).iter().enumerate() {
                let id = id as usize;
                match &self.fields[f] {
                    Field::Folded(p) => add(row, &p[id * w..(id + 1) * w]),
                    Field::Pooled { table, column } => pooled_row[*column..column + d]
                        .copy_from_slice(&table[id * d..(id + 1) * d]),
                }
                if let Some(weights) = self.wide.get(f) {
                    *wide += weights[id];
                }
            }
            let multi = table.multi_of(u);
            let mut start = 0;
            for (g, (&len, &max)) in table.lens_of(u).iter().zip(lens).enumerate() {
                let ids = &multi[start..start + (len as usize).min(max)];
                start += max;
                let inv_len = 1.0 / ids.len().max(1) as f32;
                let f = singles + g;
                // The masked mean: a sum over the present tokens, times 1/len.
                match &self.fields[f] {
                    Field::Folded(p) => {
                        let acc = sum_rows(&mut sum[..w], p, ids);
                        row.iter_mut().zip(acc).for_each(|(o, s)| *o += s * inv_len);
                    }
                    Field::Pooled { table, column } => {
                        let acc = sum_rows(&mut sum[..d], table, ids);
                        let out = &mut pooled_row[*column..column + d];
                        out.iter_mut().zip(acc).for_each(|(o, s)| *o = s * inv_len);
                    }
                }
                if let Some(weights) = self.wide.get(f) {
                    // The wide part counts each distinct token once.
                    for (p, &id) in ids.iter().enumerate() {
                        if !ids[..p].contains(&id) {
                            *wide += weights[id as usize];
                        }
                    }
                }
            }
        }
    }

    /// The layers after the first, as [`MetaHeac::forward`] runs them, from what the host gathered.
    fn tail(&self, gathered: Gathered, n: usize) -> Tensor<1> {
        let Gathered { pre, pooled, wide } = gathered;
        let m = &self.model;
        let device = m.device();
        let mut pre: Tensor<2> = Tensor::from_data(TensorData::new(pre, [n, self.width]), &device);
        if let Some(rest) = &self.rest {
            let pooled: Tensor<2> =
                Tensor::from_data(TensorData::new(pooled, [n, self.pooled_width]), &device);
            pre = pre + pooled.matmul(rest.clone());
        }
        let (ew, g) = (self.experts_width, self.gate_hidden);
        let experts = m.experts.len();
        // Every column is the input of a ReLU: the experts' first layers and both gates' hidden ones.
        let pre = relu(pre);
        // Hybrid experts: h = Σ_k g_k E_k(x), expert-major ([n, B, d]) as the later layers leave it.
        let first: Tensor<3> = pre
            .clone()
            .narrow(1, 0, ew)
            .reshape([n, experts, ew / experts])
            .swap_dims(0, 1);
        let outputs = experts_later_layers(&m.experts, first);
        let gate = log_softmax(m.expert_gate.out.forward(pre.clone().narrow(1, ew, g)), 1).exp();
        let h: Tensor<2> = (outputs * gate.swap_dims(0, 1).unsqueeze_dim::<3>(2))
            .sum_dim(0)
            .squeeze_dim::<2>(0);
        // Hybrid critics: ŷ = Σ_j c_j σ(T_j(h)).
        let log_c = log_softmax(m.critic_gate.out.forward(pre.narrow(1, ew + g, g)), 1);
        let c = log_c.clone().exp();
        let (prob, log_prob, log_not_prob) =
            critic_mixture(log_c, c, m.critic_logits(h), m.critic_combine);
        if m.wide.is_empty() {
            return prob;
        }
        let w: Tensor<1> = Tensor::from_data(TensorData::new(wide, [n]), &device);
        sigmoid((log_prob - log_not_prob).mul_scalar(self.wide_scale) + w)
    }
}

/// `acc` = the sum of the rows `ids` of `rows` (rows as wide as `acc`).
fn sum_rows<'a>(acc: &'a mut [f32], rows: &[f32], ids: &[u32]) -> &'a [f32] {
    let w = acc.len();
    acc.fill(0.0);
    for &id in ids {
        add(acc, &rows[id as usize * w..(id as usize + 1) * w]);
    }
    acc
}

/// `acc += x`, element-wise (written plainly so the compiler vectorises it).
fn add(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}
