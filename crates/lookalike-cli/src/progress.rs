//! Progress bars (stderr; hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

pub fn bytes(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}")
            .expect("valid template"),
    );
    bar.set_message(msg.to_string());
    bar
}

pub fn steps(len: u64, msg: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {prefix}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}
