//! Test helpers shared by the core's test files: a tiny schema, random users, a tiny MetaHeac.
#![allow(dead_code)]

use burn::tensor::Device;
use lookalike_core::data::{Batch, Campaign, Role, Row, UserTable};
use lookalike_core::model::{Init, Inputs, MetaHeac, MetaHeacConfig};
use lookalike_core::schema::{Field, Schema, Vocabulary};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

pub const LENS: [usize; 2] = [3, 2];

pub fn schema() -> Schema {
    let field = |name: &str, n: usize, max_len: usize| Field {
        name: name.into(),
        max_len,
        vocab: Vocabulary::from_tokens((1..n).map(|i| i.to_string())),
    };
    Schema {
        user_single: vec![field("age", 5, 1), field("gender", 3, 1)],
        user_multi: vec![field("interest1", 9, LENS[0]), field("kw1", 7, LENS[1])],
        ad: vec![field("adCategoryId", 4, 1), field("productType", 3, 1)],
    }
}

pub fn config(s: &Schema) -> MetaHeacConfig {
    MetaHeacConfig::for_schema(s)
        .with_embed_dim(4)
        .with_expert_dims(vec![6, 5])
        .with_num_experts(3)
        .with_num_critics(2)
        .with_gate_hidden(4)
}

/// Random users with some empty multi-valued fields.
pub fn users(n: usize, seed: u64) -> UserTable {
    let s = schema();
    let mut t = UserTable::new(&s);
    let mut rng = StdRng::seed_from_u64(seed);
    for u in 0..n {
        let single: Vec<u32> = s
            .user_single
            .iter()
            .map(|f| rng.random_range(0..f.table_size() as u32))
            .collect();
        let mut multi = Vec::new();
        let mut lens = Vec::new();
        for f in &s.user_multi {
            let len = rng.random_range(0..=f.max_len);
            for p in 0..f.max_len {
                multi.push(if p < len {
                    rng.random_range(1..f.table_size() as u32)
                } else {
                    0
                });
            }
            lens.push(len as u8);
        }
        t.push(u as u64, &single, &multi, &lens);
    }
    t
}

pub fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Row {
            user: i as u32,
            label: rng.random::<f32>() < 0.3,
        })
        .collect()
}

pub fn model(c: &MetaHeacConfig, device: &Device, seed: u64) -> MetaHeac {
    c.init(Init::Seeded(seed), device)
}

pub fn inputs(users: &UserTable, ad: &[u32], rows: &[Row], device: &Device) -> Inputs {
    Inputs::new(&Batch::gather(users, &LENS, ad, rows), device)
}

pub fn values(t: burn::tensor::Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `n` training campaigns over the same users whose labels follow a feature (something to learn).
pub fn learnable_campaigns(u: &UserTable, n: usize) -> Vec<Campaign> {
    let rows: Vec<Row> = (0..u.len() as u32)
        .map(|i| Row {
            user: i,
            label: u.single_of(i as usize)[0] >= 3,
        })
        .collect();
    (0..n)
        .map(|k| Campaign {
            aid: k.to_string(),
            ad: vec![k as u32 + 1, 1],
            role: Role::Train,
            stage1: rows.clone(),
            stage2: Vec::new(),
        })
        .collect()
}

/// A campaign to fine-tune on (300 users whose label follows a feature: its stage-1 rows and ad ids) and a
/// random general model of the tiny config, with a wide part, on an autodiff CPU device.
pub struct Tuning {
    pub users: UserTable,
    pub rows: Vec<Row>,
    pub ad: [u32; 2],
    pub general: MetaHeac,
}

pub fn tuning() -> Tuning {
    let users = users(300, 8);
    let rows = learnable_campaigns(&users, 1).remove(0).stage1;
    let general = model(&config(&schema()), &Device::flex().autodiff(), 4);
    Tuning {
        users,
        rows,
        ad: [1, 2],
        general,
    }
}
