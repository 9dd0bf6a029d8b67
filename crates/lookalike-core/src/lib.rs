//! Device-agnostic core of the look-alike system: the MetaHeac model, meta-training (offline stage),
//! fine-tuning and scoring (online stage), the paper's metrics, and the self-describing model record.
//!
//! No file-system access here, so the crate compiles to wasm32 for the web app.

pub mod backend;
pub mod baselines;
pub mod checkpoint;
pub mod data;
pub mod expansion;
pub mod finetune;
pub mod finite;
pub mod fold;
mod frame;
pub mod grads;
pub mod lr;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod mtl;
pub mod mtl_train;
pub mod online;
pub mod pool;
pub mod record;
pub mod schedule;
pub mod schema;
pub mod seeds;
pub mod similar;
pub mod sparse;
pub mod stats;
pub mod unknown;

pub use burn;
