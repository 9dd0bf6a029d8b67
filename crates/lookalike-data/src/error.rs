//! Errors that name the file, line and field at fault.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct DataError {
    pub file: PathBuf,
    /// 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl DataError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        DataError {
            file: file.to_path_buf(),
            line: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn at(file: &Path, line: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        DataError {
            file: file.to_path_buf(),
            line: Some(line),
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn io(file: &Path, e: std::io::Error) -> Self {
        DataError::new(file, format!("cannot read: {e}"))
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DataError {}

pub type Result<T> = std::result::Result<T, DataError>;
