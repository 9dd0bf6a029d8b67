//! The page's components, one per file. Each reads the [`Store`](crate::state::Store) from context.

pub mod app;
pub mod assets_panel;
pub mod backend_badge;
pub mod campaign_panel;
pub mod compare_panel;
pub mod composition;
pub mod gate_bars;
pub mod gate_map;
pub mod gates_panel;
pub mod histogram;
pub mod line_chart;
pub mod results_panel;
pub mod seeds_panel;
pub mod train_panel;
pub mod walkthrough;

use crate::state::{Action, AppState, Store};
use yew::prelude::*;

/// A callback for an `<input>` event: parses the input's value and dispatches `action` of it; values
/// that do not parse are ignored (the input keeps showing what the user typed).
pub fn on_input_value<E, T>(
    dispatch: UseReducerDispatcher<AppState>,
    action: fn(T) -> Action,
) -> Callback<E>
where
    E: TargetCast + 'static,
    T: std::str::FromStr + 'static,
{
    Callback::from(move |e: E| {
        let v = e
            .target_unchecked_into::<web_sys::HtmlInputElement>()
            .value();
        if let Ok(x) = v.parse::<T>() {
            dispatch.dispatch(action(x));
        }
    })
}

/// The store every component reads.
#[hook]
pub fn use_store() -> Store {
    use_context::<Store>().expect("App provides the store")
}

pub fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

pub fn opt3(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.3}"))
}

/// 12345 → "12,345".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Offers `text` as a file download (no network involved: a blob URL).
pub fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)
        .map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = doc
        .create_element("a")
        .map_err(|e| format!("{e:?}"))?
        .dyn_into()
        .map_err(|_| "not an anchor")?;
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}
