//! Data side of the look-alike system: the Tencent raw layout, vocabularies, the campaign split,
//! the prepared binary dataset, and synthetic worlds in the raw layout.

pub mod atomic;
pub mod campaign;
pub mod columnar;
pub mod error;
pub mod mtl;
pub mod mtl_synth;
pub mod pool;
pub mod prepare;
pub mod raw;
pub mod screen;
pub mod synth;

pub use error::{DataError, Result};
