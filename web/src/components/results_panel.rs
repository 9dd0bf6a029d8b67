use super::composition::Composition;
use super::histogram::Histogram;
use super::{download, on_input_value, thousands, use_store};
use crate::state::{Action, RunKind};
use lookalike_core::metrics::top_k;
use lookalike_core::online::audience_size;
use std::rc::Rc;
use yew::prelude::*;

const TABLE_ROWS: usize = 25;

/// The expanded audience: size knob, table, CSV, score histogram and composition.
#[function_component(ResultsPanel)]
pub fn results_panel() -> Html {
    let store = use_store();
    let (Some(assets), Some(plan), Some(run)) =
        (&store.assets, &store.plan, store.run(RunKind::Main))
    else {
        return html! {};
    };
    let Some(scores) = run.scores.clone() else {
        return html! {};
    };
    let candidates = &plan.candidates;
    let k = audience_size(candidates.len(), store.audience_pct);
    let top = top_k(&scores, k);
    let cutoff = top.last().map_or(0.0, |&i| scores[i]);
    let uids = &assets.pool.users.uids;
    let audience: Rc<Vec<u32>> = Rc::new(top.iter().map(|&i| candidates[i]).collect());
    let on_size: Callback<InputEvent> = on_input_value(store.dispatcher(), Action::SetAudience);
    let csv = {
        let rows: Vec<(u64, f32)> = top
            .iter()
            .map(|&i| (uids[candidates[i] as usize], scores[i]))
            .collect();
        let aid = store.campaign.map_or("campaign".to_string(), |c| {
            assets.pool.campaigns[c].aid.clone()
        });
        Callback::from(move |_| {
            let mut text = String::with_capacity(rows.len() * 24);
            text.push_str("uid,score\n");
            for (u, s) in &rows {
                text.push_str(&format!("{u},{s:.6}\n"));
            }
            if let Err(e) = download(&format!("audience-{aid}.csv"), "text/csv", &text) {
                web_sys::console::error_1(&e.into());
            }
        })
    };
    let schema = &assets.header.schema;
    let shown: Vec<usize> = ["age", "gender", "consumptionAbility"]
        .iter()
        .filter_map(|n| schema.user_single.iter().position(|f| f.name == *n))
        .collect();
    let table_rows = top.iter().take(TABLE_ROWS).enumerate().map(|(rank, &i)| {
        let u = candidates[i] as usize;
        let feats = shown.iter().map(|&f| {
            let id = assets.pool.users.single_of(u)[f];
            html! { <td>{schema.user_single[f].vocab.token(id).unwrap_or("?")}</td> }
        });
        html! { <tr><td>{rank + 1}</td><td>{uids[u]}</td><td>{format!("{:.4}", scores[i])}</td>{for feats}</tr> }
    });
    let since_load = run.done_ms.map(|t| t / 1000.0);
    html! {
        <section id="results">
            <h2>{"The expanded audience"}</h2>
            <p class="explain">{"Every candidate (the pool minus the seeds) was scored by the fine-tuned model; the audience is the top of that ranking."}</p>
            <label>{"audience size "}
                <input type="range" id="audience-pct" min="1" max="10" step="0.5" value={store.audience_pct.to_string()} oninput={on_size}/>
                {format!(" {:.1} % of the candidates", store.audience_pct)}
            </label>
            <p id="audience-summary" data-k={k.to_string()} data-seconds-since-load={since_load.map_or(String::new(), |s| format!("{s:.2}"))}>
                {format!("{} users out of {} candidates (seeds excluded), score cut-off {cutoff:.4}. Scored in {:.1} s",
                    thousands(k), thousands(candidates.len()), run.score_seconds.unwrap_or(0.0))}
                if let Some(s) = since_load {
                    {format!("; {s:.1} s after the page opened.")}
                }
            </p>
            <button id="btn-csv" class="primary" onclick={csv}>{format!("Download the audience (CSV, {} rows)", thousands(k))}</button>
            <div class="side">
                <table id="audience-table" class="audience">
                    <thead><tr><th>{"#"}</th><th>{"uid"}</th><th>{"score"}</th>
                        {for shown.iter().map(|&f| html! { <th>{&schema.user_single[f].name}</th> })}</tr></thead>
                    <tbody>{for table_rows}</tbody>
                </table>
                <Histogram scores={scores.clone()} cutoff={cutoff}/>
            </div>
            <Composition audience={audience}/>
        </section>
    }
}
