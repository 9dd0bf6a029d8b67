use super::use_store;
use crate::engine;
use crate::state::{Action, SEED};
use lookalike_core::data::Row;
use std::rc::Rc;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

const SHOWN_ROWS: usize = 12;

/// Teaching: one meta-training step in slow motion. Phase 1 "understand" adapts θ on the support set,
/// phase 2 "find" scores the query set with the adapted θ', phase 3 moves the general model.
#[function_component(WalkthroughPanel)]
pub fn walkthrough_panel() -> Html {
    let store = use_store();
    let Some(assets) = store.assets.clone() else {
        return html! {};
    };
    let train = assets.training_campaigns();
    if train.is_empty() {
        return html! {};
    }
    let pick = {
        let dispatch = store.dispatcher();
        Callback::from(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlSelectElement>().value();
            dispatch.dispatch(Action::WalkTask(v.parse().unwrap_or(0)));
        })
    };
    let go = {
        let dispatch = store.dispatcher();
        let task = store.walk_task;
        let assets = assets.clone();
        Callback::from(move |_| {
            let dispatch = dispatch.clone();
            let assets = assets.clone();
            spawn_local(async move {
                let w = engine::walkthrough(assets, task, SEED).await.map(Rc::new);
                dispatch.dispatch(Action::Walk(w));
            });
        })
    };
    let phase = store.walk_phase;
    let next = {
        let dispatch = store.dispatcher();
        Callback::from(move |_| dispatch.dispatch(Action::WalkPhase(phase + 1)))
    };
    let uids = &assets.pool.users.uids;
    let sample = |rows: &[Row], class: &'static str| {
        let seeds = rows.iter().filter(|r| r.label).count();
        // Seeds are rare: show some of each.
        let shown: Vec<Row> = rows
            .iter()
            .filter(|r| r.label)
            .take(SHOWN_ROWS / 2)
            .chain(rows.iter().filter(|r| !r.label).take(SHOWN_ROWS / 2))
            .copied()
            .collect();
        html! {
            <div class={classes!("rows", class)}>
                <p>{format!("{} rows: {} seeds (converted), {} non-seeds", rows.len(), seeds, rows.len() - seeds)}</p>
                <table>
                    <tbody>
                        {for shown.iter().map(|r| html! {
                            <tr class={classes!(r.label.then_some("seed"))}>
                                <td>{uids[r.user as usize]}</td>
                                <td>{if r.label { "seed" } else { "non-seed" }}</td>
                            </tr>
                        })}
                        <tr><td colspan="2">{"…"}</td></tr>
                    </tbody>
                </table>
            </div>
        }
    };
    let body = match &store.walk {
        None => html! {},
        Some(Err(e)) => html! { <p class="error">{e}</p> },
        Some(Ok(w)) => html! {
            <div class="phases" id="walk-phases" data-phase={phase.to_string()}>
                <div class={classes!("phase", (phase >= 1).then_some("shown"))}>
                    <h3>{"1 · Understand the campaign (support set)"}</h3>
                    <p>{"A support set of this campaign's seeds (green) and non-seeds takes one plain gradient step from the general weights θ: θ′ = θ − α∇L_S(θ). The inner step is deliberately small (the reference α); what matters is where it leads, which phase 3 trains."}</p>
                    {sample(&w.support, "support")}
                    <p class="numbers">{format!("support loss L_S: {:.5} at θ → {:.5} at θ′ ({:+.5})", w.support_before, w.support_after, w.support_after - w.support_before)}</p>
                </div>
                if phase >= 2 {
                    <div class="phase shown">
                        <h3>{"2 · Find the audience (query set)"}</h3>
                        <p>{"Other rows of the same campaign check the adapted model: does θ′ find the converters it was not shown?"}</p>
                        {sample(&w.query, "query")}
                        <p class="numbers">{format!("query loss L_Q: {:.5} at θ, {:.5} at θ′ ({:+.5})", w.query_before, w.query_adapted, w.query_adapted - w.query_before)}</p>
                    </div>
                }
                if phase >= 3 {
                    <div class="phase shown">
                        <h3>{"3 · Learn to expand (meta-update)"}</h3>
                        <p>{"The general weights move to make the query loss after adaptation smaller: θ ← θ − β∇_θ L_Q(θ′). Over hundreds of campaigns θ becomes a starting point that adapts well from a few seeds."}</p>
                        <p class="numbers">{format!("query loss after adaptation: {:.5} before the meta-update → {:.5} after ({:+.5})", w.query_adapted, w.query_after_meta, w.query_after_meta - w.query_adapted)}</p>
                    </div>
                }
                if phase < 3 {
                    <button id="btn-walk-next" onclick={next}>{"Next phase"}</button>
                }
            </div>
        },
    };
    html! {
        <section id="walkthrough">
            <h2>{"One meta-training step, phase by phase"}</h2>
            <p class="explain">{format!("Offline, every training campaign is a small expansion exercise. Take one step on a demo training campaign with the loaded general model (CPU; inner α = {}).",
                assets.header.training.meta.as_ref().map_or(2e-4, |m| m.inner_lr))}</p>
            <div class="controls">
                <label>{"training campaign "}
                    <select id="walk-task" onchange={pick}>
                        {for train.iter().enumerate().map(|(t, &i)| html! {
                            <option value={t.to_string()} selected={store.walk_task == t}>{format!("aid {}", assets.pool.campaigns[i].aid)}</option>
                        })}
                    </select>
                </label>
                <button id="btn-walk" onclick={go}>{"Take one meta-step"}</button>
            </div>
            {body}
        </section>
    }
}
