//! The look-alike web app: a Yew page that loads the general model and a candidate pool, takes a seed
//! list, fine-tunes MetaHeac in the browser (WebGPU, or the CPU backend compiled to wasm) with the same
//! core code as the CLI, and shows the expanded audience, the gates and the learning curves.
//!
//! Built only for wasm32 (see README, "Web app").
#![cfg(target_arch = "wasm32")]

mod components;
pub mod engine;
pub mod state;

use wasm_bindgen::prelude::*;

/// Mounts the app on `#app`. A panic is shown on the page (and in the title, for headless tests).
#[wasm_bindgen]
pub fn run() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("PANIC: {info}");
        web_sys::console::error_1(&msg.clone().into());
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&msg);
            if let Some(el) = doc.get_element_by_id("panic") {
                el.set_text_content(Some(&msg));
                let _ = el.set_attribute("style", "display:block");
            }
        }
    }));
    let root = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app"))
        .expect("index.html has an element with id `app`");
    yew::Renderer::<components::app::App>::with_root(root).render();
}
