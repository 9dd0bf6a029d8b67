use super::assets_panel::AssetsPanel;
use super::backend_badge::BackendBadge;
use super::campaign_panel::CampaignPanel;
use super::compare_panel::ComparePanel;
use super::gates_panel::GatesPanel;
use super::results_panel::ResultsPanel;
use super::seeds_panel::SeedsPanel;
use super::train_panel::TrainPanel;
use super::walkthrough::WalkthroughPanel;
use crate::engine::{self, Assets};
use crate::state::{Action, AppState, Store, Tab};
use std::rc::Rc;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

/// Served next to index.html by `scripts/build-web.sh`.
pub const DEMO_RECORD: &str = "dist/demo.rec";
pub const DEMO_BASELINE: &str = "dist/demo-none.rec";
pub const DEMO_POOL: &str = "dist/demo.pool";

async fn load_demo(dispatch: UseReducerDispatcher<AppState>) {
    let t0 = engine::now_ms();
    let record = engine::fetch_bytes(DEMO_RECORD).await;
    let pool = engine::fetch_bytes(DEMO_POOL).await;
    // Optional: only the teaching comparison needs it.
    let baseline = engine::fetch_bytes(DEMO_BASELINE).await.ok();
    let result = record.and_then(|r| {
        pool.and_then(|p| Assets::new(r, "demo.rec".into(), baseline, p, "demo.pool".into()))
    });
    match result {
        Ok(a) => {
            web_sys::console::info_1(
                &format!("demo assets ready in {:.0} ms", engine::now_ms() - t0).into(),
            );
            dispatch.dispatch(Action::Loaded(Rc::new(a)));
        }
        Err(e) => dispatch.dispatch(Action::LoadFailed(format!(
            "{e}. Build the demo assets with scripts/build-web.sh, or load a record and a pool below."
        ))),
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let store: Store = use_reducer(AppState::default);
    {
        let dispatch = store.dispatcher();
        use_effect_with((), move |_| {
            let d = dispatch.clone();
            spawn_local(async move {
                let g = engine::probe_webgpu().await;
                d.dispatch(Action::Gpu(g));
            });
            spawn_local(load_demo(dispatch));
        });
    }
    let tab = store.tab;
    let tab_button = |t: Tab, label: &'static str, id: &'static str| {
        let dispatch = store.dispatcher();
        html! {
            <button id={id} class={classes!("tab", (tab == t).then_some("active"))}
                onclick={Callback::from(move |_| dispatch.dispatch(Action::Tab(t)))}>{label}</button>
        }
    };
    let ready = store.assets.is_some();
    html! {
        <ContextProvider<Store> context={store.clone()}>
            <header>
                <div>
                    <h1>{"Look-alike audience expansion"}</h1>
                    <p class="sub">{"MetaHeac (Zhu et al., KDD 2021): a general model meta-trained on past campaigns, fine-tuned on your seeds, right here in the browser."}</p>
                </div>
                <BackendBadge/>
            </header>
            <p class="privacy" id="privacy">{"Nothing leaves this page: the model, the pool, your seed list and the results stay in your browser. No server computes anything."}</p>
            if let Some(m) = &store.loading {
                <p class="loading" id="loading">{m}</p>
            }
            if let Some(e) = &store.load_error {
                <p class="error" id="load-error">{e}</p>
            }
            <nav class="tabs">
                {tab_button(Tab::Expand, "1 · Expand an audience", "tab-expand")}
                {tab_button(Tab::Gates, "2 · Experts and critics", "tab-gates")}
                {tab_button(Tab::Teach, "3 · Why meta-learning?", "tab-teach")}
            </nav>
            {match tab {
                Tab::Expand => html! {
                    <main>
                        <AssetsPanel/>
                        if ready {
                            <CampaignPanel/>
                            <SeedsPanel/>
                            <TrainPanel/>
                            <ResultsPanel/>
                        }
                    </main>
                },
                Tab::Gates => html! { <main>if ready { <GatesPanel/> }</main> },
                Tab::Teach => html! {
                    <main>
                        if ready {
                            <ComparePanel/>
                            <WalkthroughPanel/>
                        }
                    </main>
                },
            }}
        </ContextProvider<Store>>
    }
}
