use super::{thousands, use_store};
use crate::engine::{self, Assets};
use crate::state::Action;
use std::rc::Rc;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// The general model and the candidate pool: what is loaded, and loading one's own.
#[function_component(AssetsPanel)]
pub fn assets_panel() -> Html {
    let store = use_store();
    let record_input = use_node_ref();
    let pool_input = use_node_ref();
    let load = {
        let dispatch = store.dispatcher();
        let (ri, pi) = (record_input.clone(), pool_input.clone());
        let current = store.assets.clone();
        Callback::from(move |_| {
            let file = |r: &NodeRef| {
                r.cast::<HtmlInputElement>()
                    .and_then(|i| i.files())
                    .and_then(|f| f.get(0))
            };
            let (rf, pf) = (file(&ri), file(&pi));
            let dispatch = dispatch.clone();
            let current = current.clone();
            spawn_local(async move {
                dispatch.dispatch(Action::Loading("reading your files…".into()));
                let result = async {
                    let (record, record_name, baseline) = match (&rf, &current) {
                        (Some(f), _) => (engine::read_file(f).await?, f.name(), None),
                        (None, Some(a)) => (
                            a.record.to_vec(),
                            a.record_name.clone(),
                            a.baseline.as_ref().map(|b| b.to_vec()),
                        ),
                        (None, None) => return Err("choose a model record (.rec)".to_string()),
                    };
                    let (pool, pool_name) = match (&pf, &current) {
                        (Some(f), _) => (engine::read_file(f).await?, f.name()),
                        (None, Some(a)) => {
                            return Err(format!(
                                "choose a pool file too: the pool must be encoded with the record's vocabularies (the loaded pool is {})",
                                a.pool_name
                            ));
                        }
                        (None, None) => return Err("choose a pool file (.pool)".to_string()),
                    };
                    Assets::new(record, record_name, baseline, pool, pool_name)
                }
                .await;
                match result {
                    Ok(a) => dispatch.dispatch(Action::Loaded(Rc::new(a))),
                    Err(e) => dispatch.dispatch(Action::LoadFailed(e)),
                }
            });
        })
    };
    let info = store.assets.as_ref().map(|a| {
        let h = &a.header;
        let t = &h.training;
        let meta = match &t.meta {
            Some(m) if m.meta_grad == lookalike_core::meta::MetaGrad::None => format!(
                "trained without meta-learning (plain mini-batches, {} iterations on {} campaigns)",
                t.iterations, t.train_campaigns
            ),
            Some(m) => format!(
                "meta-trained ({:?} MAML, {} iterations on {} campaigns)",
                m.meta_grad, t.iterations, t.train_campaigns
            ),
            None => "not trained (random weights)".to_string(),
        };
        let roles = |r| a.pool.campaigns.iter().filter(|c| c.role == r).count();
        use lookalike_core::data::Role;
        html! {
            <ul class="facts" id="assets-info">
                <li>{format!("Model {}: {:.2} MB, {} parameters ({:?}), {} experts, {} critics; {meta}",
                    a.record_name, a.record.len() as f64 / 1e6, thousands(h.parameters), h.precision,
                    h.model.num_experts, h.model.num_critics)}</li>
                <li>{format!("Pool {}: {} users, {:.2} MB; {} campaigns ({} used for meta-training, {} cold and {} hot held out)",
                    a.pool_name, thousands(a.pool.users.len()), a.pool_bytes as f64 / 1e6,
                    a.pool.campaigns.len(), roles(Role::Train), roles(Role::Cold), roles(Role::Hot))}</li>
                if a.baseline.is_none() {
                    <li class="muted">{"No model without meta-learning is loaded: the teaching comparison runs meta-trained vs scratch only."}</li>
                }
            </ul>
        }
    });
    html! {
        <section id="assets">
            <h2>{"The general model and the candidate pool"}</h2>
            <p class="explain">{"Offline, the CLI meta-trained a general model on many past campaigns (lookalike pretrain) and exported the users it may pick from (lookalike export-pool). Both are loaded into this page; you can load your own."}</p>
            {info.unwrap_or_default()}
            <details>
                <summary>{"Load your own record and pool"}</summary>
                <label>{"model record (.rec) "}<input type="file" id="record-file" accept=".rec" ref={record_input}/></label>
                <label>{"pool (.pool) "}<input type="file" id="pool-file" accept=".pool" ref={pool_input}/></label>
                <button id="btn-load" onclick={load}>{"Load"}</button>
            </details>
        </section>
    }
}
