//! Synthetic data in the multi-task layout (MTReclib's AliExpress CSVs), deterministic by seed.
//!
//! The story: users search; each search shows a few items. Users and items have latent taste vectors.
//! A click depends on user–item affinity, the item's position on the page and the hour; a conversion
//! (which needs a click) depends partly on the same affinity and partly on a purchase affinity of its
//! own, on price against the user's purchase power, and on the shop. So the two tasks share structure
//! but not all of it, and the sparse one (conversions, well below 1 % of impressions) has the most to
//! gain from what the dense one (clicks, a few per cent) learns.
//!
//! 16 categorical fields (user side, search context, item side) carry the latents only through ids and
//! coarse attributes; 63 numerical fields hold noisy, heavy-tailed views of them (counts, prices,
//! historical rates) and plain noise on very different scales, as logged features do.

use crate::mtl::MtlTable;
use crate::synth::{normal, sigmoid};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How much data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlScale {
    /// Tests: 4,000 train and 1,000 test rows.
    Tiny,
    /// The built-in default: 80,000 and 20,000 rows of 1,500 users and 500 items, so that ids recur
    /// (53 and 160 impressions each) and a run on 2 cores takes minutes.
    Demo,
    /// A million-row set: 1,000,000 and 250,000.
    Large,
}

/// What [`generate`] makes.
#[derive(Debug, Clone)]
pub struct MtlSynthConfig {
    pub users: usize,
    pub items: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    /// Target share of impressions clicked.
    pub ctr: f64,
    /// Target share of clicks converted (CTCVR = ctr · cvr).
    pub cvr: f64,
    /// How much of the conversion affinity is the click affinity (0: none shared, 1: all).
    pub shared: f64,
    pub seed: u64,
}

impl MtlSynthConfig {
    pub fn new(scale: MtlScale, seed: u64) -> Self {
        let (users, items, train_rows, test_rows) = match scale {
            MtlScale::Tiny => (600, 300, 4_000, 1_000),
            MtlScale::Demo => (1_500, 500, 80_000, 20_000),
            MtlScale::Large => (120_000, 30_000, 1_000_000, 250_000),
        };
        // The demo's test rows hold about 80 conversions at 10 % of clicks (50 at 6 %): CTCVR AUC
        // needs them.
        let cvr = if scale == MtlScale::Demo { 0.1 } else { 0.06 };
        MtlSynthConfig {
            users,
            items,
            train_rows,
            test_rows,
            ctr: 0.04,
            cvr,
            shared: 0.6,
            seed,
        }
    }
}

const K: usize = 8;
/// Categorical fields: (name in comments, size or 0 for "the users"/"the items").
const USER_FIELDS: usize = 7;
const CONTEXT_FIELDS: usize = 2;
const ITEM_FIELDS: usize = 7;
const INFORMATIVE_USER: usize = 12;
const INFORMATIVE_ITEM: usize = 12;
const CONTEXT_NUMERICAL: usize = 3;
const NOISE: usize = 63 - INFORMATIVE_USER - INFORMATIVE_ITEM - CONTEXT_NUMERICAL;

fn vec_k(rng: &mut StdRng, scale: f64) -> [f64; K] {
    std::array::from_fn(|_| normal(rng) * scale)
}

fn dot(a: &[f64; K], b: &[f64; K]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct User {
    taste: [f64; K],
    buy: [f64; K],
    cat: [u32; USER_FIELDS],
    power: f64,
    num: [f32; INFORMATIVE_USER],
}

struct Item {
    look: [f64; K],
    sell: [f64; K],
    cat: [u32; ITEM_FIELDS],
    price: f64,
    shop_effect: f64,
    num: [f32; INFORMATIVE_ITEM],
}

/// The world: users, items and the projections every row is drawn with.
struct World {
    users: Vec<User>,
    items: Vec<Item>,
    /// Per (user segment, item category) an idiosyncratic click effect: crosses that ids alone reveal.
    cross: Vec<f64>,
    categories: usize,
    click_bias: f64,
    buy_bias: f64,
    shared: f64,
    noise_scales: Vec<(f64, f64)>,
}

fn world(c: &MtlSynthConfig, rng: &mut StdRng) -> World {
    let segments = 40;
    let categories = (c.items / 20).clamp(10, 400);
    let brands = (c.items / 6).max(20);
    let shops = (c.items / 10).max(10);
    let cities = 120;
    // Attribute projections: coarse categorical attributes are functions of the latents plus noise.
    let seg_proj: Vec<[f64; K]> = (0..segments).map(|_| vec_k(rng, 1.0)).collect();
    let cat_centres: Vec<[f64; K]> = (0..categories).map(|_| vec_k(rng, 1.0)).collect();
    let user_proj: Vec<[f64; K]> = (0..INFORMATIVE_USER).map(|_| vec_k(rng, 0.5)).collect();
    let item_proj: Vec<[f64; K]> = (0..INFORMATIVE_ITEM).map(|_| vec_k(rng, 0.5)).collect();
    let users = (0..c.users)
        .map(|u| {
            let taste = vec_k(rng, 1.0);
            let buy = vec_k(rng, 1.0);
            let segment = (0..segments)
                .max_by(|&a, &b| (dot(&seg_proj[a], &taste)).total_cmp(&dot(&seg_proj[b], &taste)))
                .unwrap_or(0) as u32;
            let power = normal(rng) * 0.8 + 0.3 * buy[0];
            let age = ((power + 2.0) * 1.5).clamp(0.0, 7.0) as u32;
            let num = std::array::from_fn(|j| {
                let x = dot(&user_proj[j], if j % 2 == 0 { &taste } else { &buy });
                match j % 3 {
                    // A count: heavy-tailed.
                    0 => (x + normal(rng) * 0.5).exp().round() as f32,
                    // A historical rate in [0, 1].
                    1 => sigmoid(x + normal(rng) * 0.5) as f32,
                    // A score with an offset and a scale of its own.
                    _ => (100.0 + 30.0 * (x + normal(rng) * 0.3)) as f32,
                }
            });
            User {
                taste,
                buy,
                cat: [
                    u as u32 + 1,
                    rng.random_range(1..=2),
                    age + 1,
                    rng.random_range(1..=cities),
                    segment + 1,
                    rng.random_range(1..=4),
                    ((power + 3.0) * 1.6).clamp(0.0, 9.0) as u32 + 1,
                ],
                power,
                num,
            }
        })
        .collect();
    let items = (0..c.items)
        .map(|i| {
            let category = rng.random_range(0..categories);
            let centre = &cat_centres[category];
            let look: [f64; K] = std::array::from_fn(|k| centre[k] * 0.8 + normal(rng) * 0.6);
            let sell = vec_k(rng, 1.0);
            let price = (3.0 + normal(rng) * 0.9 + 0.3 * look[1]).exp();
            let level = ((price.ln() - 1.0) * 2.0).clamp(0.0, 9.0) as u32;
            let shop = rng.random_range(0..shops);
            let num = std::array::from_fn(|j| {
                let x = dot(&item_proj[j], if j % 2 == 0 { &look } else { &sell });
                match j % 4 {
                    0 => (x + 2.0 + normal(rng) * 0.5).exp().round() as f32,
                    1 => sigmoid(x + normal(rng) * 0.4) as f32,
                    2 => (price * (1.0 + 0.05 * normal(rng))) as f32,
                    _ => (4.0 + 0.5 * (x + normal(rng) * 0.3)).clamp(0.0, 5.0) as f32,
                }
            });
            Item {
                look,
                sell,
                cat: [
                    i as u32 + 1,
                    category as u32 + 1,
                    rng.random_range(1..=brands) as u32,
                    shop as u32 + 1,
                    level + 1,
                    rng.random_range(1..=5),
                    rng.random_range(1..=4),
                ],
                price,
                // Shops differ in how well they sell, not in how often they are clicked.
                shop_effect: ((shop * 2654435761) % 1000) as f64 / 1000.0 * 1.6 - 0.8,
                num,
            }
        })
        .collect();
    let cross = (0..segments * categories)
        .map(|_| normal(rng) * 0.6)
        .collect();
    let noise_scales = (0..NOISE)
        .map(|j| match j % 4 {
            0 => (0.0, 1.0),
            1 => (1000.0, 300.0),
            2 => (0.0, 1e4),
            _ => (5.0, 0.01),
        })
        .collect();
    World {
        users,
        items,
        cross,
        categories,
        click_bias: 0.0,
        buy_bias: 0.0,
        shared: c.shared.clamp(0.0, 1.0),
        noise_scales,
    }
}

/// One impression's click and conversion logits.
fn logits(w: &World, u: &User, it: &Item, position: u32, hour: u32) -> (f64, f64) {
    let scale = 1.0 / (K as f64).sqrt();
    let affinity = dot(&u.taste, &it.look) * scale;
    let cross = w.cross[(u.cat[4] as usize - 1) * w.categories + (it.cat[1] as usize - 1)];
    let evening = if (18..23).contains(&hour) { 0.3 } else { 0.0 };
    let click = w.click_bias + 1.3 * affinity + cross - 0.12 * position as f64 + evening;
    let own = dot(&u.buy, &it.sell) * scale;
    let afford = -0.6 * (it.price.ln() - 3.0 - 0.8 * u.power);
    let buy = w.buy_bias
        + 1.4 * (w.shared * affinity + (1.0 - w.shared) * own)
        + afford.min(0.5)
        + it.shop_effect;
    (click, buy)
}

/// Draws the impressions of `rows` rows (searches of 3–12 items).
fn draw(w: &World, rows: usize, rng: &mut StdRng, first_search: u64) -> (MtlTable, Vec<u64>) {
    let categorical: Vec<String> = (1..=USER_FIELDS + CONTEXT_FIELDS + ITEM_FIELDS)
        .map(|i| format!("categorical_{i}"))
        .collect();
    let numerical: Vec<String> = (1..=63).map(|i| format!("numerical_{i}")).collect();
    let mut t = MtlTable::new(categorical, numerical);
    let mut ids = Vec::with_capacity(rows);
    let mut search = first_search;
    let mut cat = [0u32; USER_FIELDS + CONTEXT_FIELDS + ITEM_FIELDS];
    let mut num = [0f32; 63];
    while t.len() < rows {
        search += 1;
        let u = &w.users[rng.random_range(0..w.users.len())];
        let hour = rng.random_range(0..24u32);
        let query = rng.random_range(1..=60u32);
        let shown = rng.random_range(3..=12usize).min(rows - t.len());
        for position in 1..=shown as u32 {
            let it = &w.items[rng.random_range(0..w.items.len())];
            let (lc, lb) = logits(w, u, it, position, hour);
            let click = rng.random::<f64>() < sigmoid(lc);
            let conversion = click && rng.random::<f64>() < sigmoid(lb);
            cat[..USER_FIELDS].copy_from_slice(&u.cat);
            cat[USER_FIELDS] = hour + 1;
            cat[USER_FIELDS + 1] = query;
            cat[USER_FIELDS + CONTEXT_FIELDS..].copy_from_slice(&it.cat);
            num[..INFORMATIVE_USER].copy_from_slice(&u.num);
            num[INFORMATIVE_USER..INFORMATIVE_USER + INFORMATIVE_ITEM].copy_from_slice(&it.num);
            let c0 = INFORMATIVE_USER + INFORMATIVE_ITEM;
            num[c0] = position as f32;
            num[c0 + 1] = shown as f32;
            num[c0 + 2] = (hour as f64 + rng.random::<f64>()) as f32;
            for (j, &(m, s)) in w.noise_scales.iter().enumerate() {
                num[c0 + CONTEXT_NUMERICAL + j] = (m + s * normal(rng)) as f32;
            }
            t.push(&cat, &num, click, conversion);
            ids.push(search);
        }
    }
    (t, ids)
}

/// Finds the bias b with Σ w·σ(l + b) / Σ w = `target` over (logit l, weight w) pairs (bisection).
fn calibrate(pairs: &[(f64, f64)], target: f64) -> f64 {
    let total: f64 = pairs.iter().map(|p| p.1).sum::<f64>().max(1e-300);
    let (mut lo, mut hi) = (-30.0, 30.0);
    for _ in 0..80 {
        let mid: f64 = (lo + hi) / 2.0;
        let mean = pairs.iter().map(|(l, w)| w * sigmoid(l + mid)).sum::<f64>() / total;
        if mean < target { lo = mid } else { hi = mid }
    }
    (lo + hi) / 2.0
}

/// Train and test tables (with their search ids), deterministic in `c.seed`.
pub fn generate(c: &MtlSynthConfig) -> ((MtlTable, Vec<u64>), (MtlTable, Vec<u64>)) {
    let mut rng = StdRng::seed_from_u64(c.seed);
    let mut w = world(c, &mut rng);
    // Biases set so that the rates come out as asked (on a pilot sample of impressions).
    let mut pilot = StdRng::seed_from_u64(c.seed ^ 0x9e37_79b9_7f4a_7c15);
    let sample: Vec<(f64, f64)> = (0..20_000)
        .map(|_| {
            let u = &w.users[pilot.random_range(0..w.users.len())];
            let it = &w.items[pilot.random_range(0..w.items.len())];
            logits(
                &w,
                u,
                it,
                pilot.random_range(1..=8),
                pilot.random_range(0..24),
            )
        })
        .collect();
    let clicks: Vec<(f64, f64)> = sample.iter().map(|s| (s.0, 1.0)).collect();
    w.click_bias = calibrate(&clicks, c.ctr);
    // The conversion rate among clicks: clicked impressions weigh by their click probability.
    let buys: Vec<(f64, f64)> = sample
        .iter()
        .map(|s| (s.1, sigmoid(s.0 + w.click_bias)))
        .collect();
    w.buy_bias = calibrate(&buys, c.cvr);
    let train = draw(&w, c.train_rows, &mut rng, 0);
    let last = train.1.last().copied().unwrap_or(0);
    let test = draw(&w, c.test_rows, &mut rng, last);
    (train, test)
}

/// The built-in default data set: the demo scale at seed 2021 (what `lookalike mtl synth --scale demo`
/// writes), split and prepared as [`crate::mtl::load`] prepares a folder.
pub fn demo_dataset(
    val_fraction: f64,
    seed: u64,
    numerical: crate::mtl::Numerical,
) -> crate::mtl::MtlDataset {
    let ((all, _), (test, _)) = generate(&MtlSynthConfig::new(MtlScale::Demo, 2021));
    let (train, valid) = crate::mtl::split(&all, val_fraction, seed);
    crate::mtl::assemble(
        train,
        valid,
        test,
        numerical,
        std::path::Path::new(DEMO_SOURCE),
    )
}

/// `dir`'s data as [`crate::mtl::load`] reads it, or, without a folder, the built-in demo.
pub fn load_or_demo(
    dir: Option<&std::path::Path>,
    val_fraction: f64,
    seed: u64,
    numerical: crate::mtl::Numerical,
) -> crate::error::Result<crate::mtl::MtlDataset> {
    match dir {
        Some(dir) => crate::mtl::load(dir, val_fraction, seed, numerical),
        None => Ok(demo_dataset(val_fraction, seed, numerical)),
    }
}

/// How the built-in default names itself where a folder's path would go.
pub const DEMO_SOURCE: &str = "built-in demo (mtl synth --scale demo --seed 2021)";
