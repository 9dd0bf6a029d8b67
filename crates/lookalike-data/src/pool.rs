//! A candidate pool from a file: the text layout (`userFeature.data`, maybe gzipped) or Parquet,
//! chosen by the file's extension, read the same way.

use crate::columnar;
use crate::error::{DataError, Result};
use crate::raw::{self, StreamStats};
use lookalike_core::data::UserTable;
use lookalike_core::schema::Schema;
use std::path::{Path, PathBuf};

/// The Parquet name of a pool in a raw directory.
pub const PARQUET_USER_FILE: &str = "userFeature.parquet";

/// The user file of a pool given as a raw directory (its `userFeature.data`, `.data.gz` or
/// `.parquet`) or as the file itself.
pub fn user_file(pool: &Path) -> Result<PathBuf> {
    if pool.is_dir() {
        let parquet = pool.join(PARQUET_USER_FILE);
        match raw::find(pool, raw::USER_FILE) {
            Ok(text) => Ok(text),
            Err(_) if parquet.is_file() => Ok(parquet),
            Err(e) => Err(DataError::new(
                &e.file,
                format!("{} (or {PARQUET_USER_FILE})", e.message),
            )),
        }
    } else if pool.is_file() {
        Ok(pool.to_path_buf())
    } else {
        Err(DataError::new(pool, "no such file or directory"))
    }
}

/// Streams the pool's users that `keep` accepts (by uid, before their features are read), encoded
/// with `schema`'s vocabularies, to `each` in pieces: memory bounded by a piece whatever the pool's
/// size. See [`raw::stream_users`] and [`columnar::stream_users`].
pub fn stream_users<E: From<DataError>>(
    path: &Path,
    schema: &Schema,
    keep: &(dyn Fn(u64) -> bool + Sync),
    progress: &mut dyn FnMut(u64),
    each: &mut dyn FnMut(UserTable) -> std::result::Result<(), E>,
) -> std::result::Result<StreamStats, E> {
    if columnar::is_parquet(path) {
        columnar::stream_users(path, schema, keep, progress, each)
    } else {
        raw::stream_users(path, schema, keep, progress, each)
    }
}

/// The pool's users that `skip` does not reject, from their uids alone.
pub fn count_users(path: &Path, skip: &(dyn Fn(u64) -> bool + Sync)) -> Result<usize> {
    if columnar::is_parquet(path) {
        columnar::count_users(path, skip)
    } else {
        raw::count_users(path, skip)
    }
}
