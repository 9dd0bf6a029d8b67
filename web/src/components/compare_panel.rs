use super::line_chart::{LineChart, Series};
use super::{opt3, use_store};
use crate::engine::{self, BackendChoice, Job, Start};
use crate::state::{Action, RunKind, RunStatus, TeachRule};
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

/// Teaching: the same seeds, fine-tuned from the meta-trained general model, from a model pre-trained
/// without meta-learning, and from scratch. The gap is the value of "learning to expand".
#[function_component(ComparePanel)]
pub fn compare_panel() -> Html {
    let store = use_store();
    let Some(assets) = store.assets.clone() else {
        return html! {};
    };
    let kinds: Vec<RunKind> = RunKind::TEACH
        .into_iter()
        .filter(|k| *k != RunKind::NoMeta || assets.baseline.is_some())
        .collect();
    let busy = kinds
        .iter()
        .any(|k| store.run(*k).is_some_and(|r| r.status.active()));
    let ready = store.plan.is_some();
    let compare = {
        let store = store.clone();
        let kinds = kinds.clone();
        let assets = assets.clone();
        Callback::from(move |_| {
            let dispatch = store.dispatcher();
            let jobs: Vec<Job> = kinds
                .iter()
                .enumerate()
                .filter_map(|(i, &kind)| {
                    let start = match kind {
                        RunKind::NoMeta => Start::Record(assets.baseline.clone()?),
                        RunKind::Scratch => Start::Scratch,
                        _ => Start::Record(assets.record.clone()),
                    };
                    // The CPU for all three: the same device makes the timings comparable.
                    Job::from_state(
                        &store,
                        kind,
                        store.next_generation + i as u64,
                        start,
                        BackendChoice::Cpu,
                        false,
                        false,
                    )
                })
                .collect();
            for j in &jobs {
                j.queue(&dispatch);
            }
            spawn_local(async move {
                for j in jobs {
                    engine::run(j, dispatch.clone()).await;
                }
            });
        })
    };
    let stop = {
        let dispatch = store.dispatcher();
        let kinds = kinds.clone();
        Callback::from(move |_| {
            for k in &kinds {
                dispatch.dispatch(Action::ResetRun(*k));
            }
        })
    };
    let set_rule = {
        let dispatch = store.dispatcher();
        Callback::from(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlSelectElement>().value();
            dispatch.dispatch(Action::SetTeachRule(if v == "paper" {
                TeachRule::Paper
            } else {
                TeachRule::Product
            }));
        })
    };
    let rule = store.teach_rule;
    let runs: Vec<(RunKind, crate::state::RunState)> = kinds
        .iter()
        .filter_map(|k| store.run(*k).map(|r| (*k, r.clone())))
        .collect();
    let series = |f: &dyn Fn(&crate::state::RunState) -> Vec<(f64, f64)>| -> Vec<Series> {
        runs.iter()
            .map(|(k, r)| Series {
                name: k.label().into(),
                color: k.color().into(),
                points: f(r),
            })
            .collect()
    };
    let losses = series(&|r| {
        r.losses
            .iter()
            .map(|&(s, l)| (s as f64, l as f64))
            .collect()
    });
    let aucs = series(&|r| r.aucs.iter().map(|&(s, a)| (s as f64, a)).collect());
    let rows = runs.iter().map(|(k, r)| {
        let status = match &r.status {
            RunStatus::Failed(e) => format!("failed: {e}"),
            s => s.name().to_string(),
        };
        html! {
            <tr data-kind={format!("{k:?}")}>
                <th style={format!("color:{}", k.color())}>{k.label()}</th>
                <td>{status}</td>
                <td>{opt3(r.aucs.first().map(|a| a.1))}</td>
                <td class="final-auc">{opt3(r.aucs.last().map(|a| a.1))}</td>
                <td>{opt3(r.truth_auc)}</td>
                <td>{r.losses.last().map_or("–".into(), |l| format!("{:.4}", l.1))}</td>
                <td>{r.train_seconds.map_or("–".into(), |t| format!("{t:.1} s"))}</td>
            </tr>
        }
    });
    html! {
        <section id="compare">
            <h2>{"Why meta-learning? The same seeds, three starting points"}</h2>
            <p class="explain">{"Fine-tune three models on exactly the same seeds and sampled non-seeds, with the same settings: the general model meta-trained to adapt quickly (MetaHeac), a model trained on the same past campaigns without meta-learning, and random weights. Watch how fast each one learns to find the held-out seeds."}</p>
            <p class="explain">{"Two ways to fine-tune. The paper's: two epochs of gradient steps on the whole network, so the starting point is all that differs: that is where meta-learning shows. The product's (what the expansion itself runs): first a logistic regression on the users' tokens on top of the starting model's score, then gradient steps until held-out rows stop improving. When the seeds' tokens alone describe the campaign well, that fit carries every start to about the same audience, and the starting point matters little; it matters where they do not, and with fewer seeds."}</p>
            if !ready {
                <p class="muted">{"Give a seed list first (tab 1; a demo campaign's real seeds work well)."}</p>
            } else if store.truth_rows().is_none() {
                <p class="muted">{"Tip: with a demo campaign's real seeds (tab 1), the table also shows each model's AUC on that campaign's real converters, thousands of labelled users, a much steadier yardstick than a handful of held-out seeds."}</p>
            }
            <div class="controls">
                <label>{"fine-tune with "}
                    <select id="teach-rule" onchange={set_rule} disabled={busy}>
                        <option value="product" selected={rule == TeachRule::Product}>{"the product's rule (wide fit, early stop)"}</option>
                        <option value="paper" selected={rule == TeachRule::Paper}>{"the paper's rule (2 epochs)"}</option>
                    </select>
                </label>
                <button id="btn-compare" class="primary" onclick={compare} disabled={!ready || busy}>{"Run the comparison (CPU)"}</button>
                <button id="btn-compare-stop" onclick={stop} disabled={runs.is_empty()}>{"Reset"}</button>
            </div>
            if !runs.is_empty() {
                <table id="compare-table" class="compare">
                    <thead><tr><th>{"start from"}</th><th>{"status"}</th><th>{"held-out AUC before"}</th><th>{"after"}</th><th>{"AUC on real converters"}</th><th>{"final loss"}</th><th>{"time"}</th></tr></thead>
                    <tbody>{for rows}</tbody>
                </table>
                <div class="charts">
                    <LineChart id="compare-loss" title="Training loss" series={losses} x_label="step" y_range={None::<(f64, f64)>}/>
                    <LineChart id="compare-auc" title="Held-out seeds AUC" series={aucs} x_label="step" y_range={Some((0.5, 1.0))}/>
                </div>
            }
        </section>
    }
}
