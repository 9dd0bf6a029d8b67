//! Numerical failure is bad input: a NaN or an infinity in a loss, a weight or a score stops the work
//! with a message that says where it appeared.

/// A non-finite value where a finite one was required.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "numerical failure: {what} is {value}; training diverged (try a smaller learning rate) or the input holds values the model cannot represent"
)]
pub struct NonFinite {
    pub what: String,
    pub value: f32,
}

impl NonFinite {
    pub fn new(what: impl Into<String>, value: f32) -> Self {
        NonFinite {
            what: what.into(),
            value,
        }
    }
}

/// `Ok` when every value is finite; otherwise names the first bad one.
pub fn check(values: &[f32], what: &str) -> Result<(), NonFinite> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(NonFinite::new(format!("{what} #{i}"), values[i])),
    }
}
