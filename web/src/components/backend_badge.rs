use super::use_store;
use crate::engine::BackendChoice;
use crate::state::{Action, RunKind};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

/// Which device fine-tunes: WebGPU when an adapter exists (flagged when it is a software fallback),
/// else burn's CPU backend compiled to wasm. The user may force either.
#[function_component(BackendBadge)]
pub fn backend_badge() -> Html {
    let store = use_store();
    let (class, text, title) = match (&store.gpu, store.choice) {
        (None, _) => ("badge", "checking WebGPU…".to_string(), String::new()),
        (Some(_), BackendChoice::Cpu) => (
            "badge cpu",
            "CPU (wasm)".to_string(),
            "forced to the CPU backend".to_string(),
        ),
        (Some(g), _) if g.adapter => (
            if g.fallback {
                "badge gpu fallback"
            } else {
                "badge gpu"
            },
            if g.fallback {
                "WebGPU · software fallback adapter".to_string()
            } else {
                "WebGPU".to_string()
            },
            g.description.clone(),
        ),
        (Some(g), BackendChoice::WebGpu) => (
            "badge error",
            "WebGPU requested, none available".to_string(),
            g.description.clone(),
        ),
        (Some(g), _) => (
            "badge cpu",
            "CPU (wasm) · no WebGPU".to_string(),
            g.description.clone(),
        ),
    };
    // What the last run actually used wins over the forecast.
    let used = store
        .run(RunKind::Main)
        .map(|r| r.backend.clone())
        .filter(|b| !b.is_empty());
    let dispatch = store.dispatcher();
    let onchange = Callback::from(move |e: Event| {
        let v = e.target_unchecked_into::<HtmlSelectElement>().value();
        dispatch.dispatch(Action::Choose(match v.as_str() {
            "cpu" => BackendChoice::Cpu,
            "webgpu" => BackendChoice::WebGpu,
            _ => BackendChoice::Auto,
        }));
    });
    let choice = match store.choice {
        BackendChoice::Auto => "auto",
        BackendChoice::Cpu => "cpu",
        BackendChoice::WebGpu => "webgpu",
    };
    html! {
        <div class="backend">
            <span id="backend-badge" class={class} title={title.clone()}>{text}</span>
            if let Some(u) = used {
                <span class="used" id="backend-used">{format!("last run: {u}")}</span>
            } else if !title.is_empty() {
                <span class="used">{title}</span>
            }
            <label>{"compute on "}
                <select id="backend-select" {onchange}>
                    <option value="auto" selected={choice == "auto"}>{"auto (WebGPU if available)"}</option>
                    <option value="cpu" selected={choice == "cpu"}>{"CPU (wasm)"}</option>
                    <option value="webgpu" selected={choice == "webgpu"}>{"WebGPU"}</option>
                </select>
            </label>
        </div>
    }
}
