//! Whole-file writes that never leave a half-written file behind: a temporary file in the target's
//! folder, synced, then renamed over the target (atomic on one file system).

use crate::error::{DataError, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes what `write` produces to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_buffered(path, |w| write(w))
}

/// [`write_atomic`] handing over the buffered file itself, for writers that need to own a `Send`
/// writer (Parquet's).
pub fn write_atomic_buffered(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| DataError::new(dir, format!("cannot create folder: {e}")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::new(path, format!("cannot write: {e}"))
    })
}
