use super::{download, pct, thousands, use_store};
use crate::engine;
use crate::state::Action;
use lookalike_core::online::{SeedMatch, match_seeds};
use lookalike_core::seeds::parse_seed_list;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Reads, parses and matches a seed file, then hands the result to the reducer.
fn take_file(file: web_sys::File, store: &crate::state::Store) {
    let dispatch = store.dispatcher();
    let Some(assets) = store.assets.clone() else {
        return;
    };
    spawn_local(async move {
        let name = file.name();
        let result = async {
            let bytes = engine::read_file(&file).await?;
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                return Err(format!("{name}: the file is empty (expected one user id per line, or a CSV with a uid column)"));
            }
            let list = parse_seed_list(&bytes).map_err(|e| format!("{name}: {e}"))?;
            if list.uids.is_empty() {
                return Err(format!("{name}: no user ids found"));
            }
            Ok(match_seeds(&list, &assets.index))
        }
        .await;
        dispatch.dispatch(Action::Seeds {
            name,
            result,
            from_campaign: None,
        });
    });
}

/// The seed list: upload (or drop) a file, or take a demo campaign's real seeds; shows the match rate.
#[function_component(SeedsPanel)]
pub fn seeds_panel() -> Html {
    let store = use_store();
    let Some(assets) = store.assets.clone() else {
        return html! {};
    };
    let dragging = use_state(|| false);
    let onchange = {
        let store = store.clone();
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            if let Some(f) = input.files().and_then(|f| f.get(0)) {
                take_file(f, &store);
            }
            // Choosing the same file again must fire `change` again.
            input.set_value("");
        })
    };
    let ondrop = {
        let store = store.clone();
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            if let Some(f) = e
                .data_transfer()
                .and_then(|d| d.files())
                .and_then(|f| f.get(0))
            {
                take_file(f, &store);
            }
        })
    };
    let ondragover = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(true);
        })
    };
    let ondragleave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let real = store.campaign.map(|c| {
        let campaign = &assets.pool.campaigns[c];
        let seeds: Vec<u32> = campaign.stage1.iter().filter(|r| r.label).map(|r| r.user).collect();
        let use_real = {
            let dispatch = store.dispatcher();
            let seeds = seeds.clone();
            let aid = campaign.aid.clone();
            Callback::from(move |_| {
                dispatch.dispatch(Action::Seeds {
                    name: format!("real seeds of campaign {aid}"),
                    result: Ok(SeedMatch {
                        listed: seeds.len(),
                        duplicates: 0,
                        matched: seeds.clone(),
                    }),
                    from_campaign: Some(c),
                })
            })
        };
        let save = {
            let uids: Vec<u64> = seeds.iter().map(|&u| assets.pool.users.uids[u as usize]).collect();
            let aid = campaign.aid.clone();
            Callback::from(move |_| {
                let mut csv = String::from("uid\n");
                for u in &uids {
                    csv.push_str(&format!("{u}\n"));
                }
                if let Err(e) = download(&format!("seeds-{aid}.csv"), "text/csv", &csv) {
                    web_sys::console::error_1(&e.into());
                }
            })
        };
        html! {
            <p>
                <button id="btn-real-seeds" onclick={use_real}>{format!("Use campaign {}'s real seeds ({})", campaign.aid, seeds.len())}</button>
                {" "}<button class="link" id="btn-save-seeds" onclick={save}>{"download them as a seed file"}</button>
            </p>
        }
    });
    let s = &store.seeds;
    let summary = s.found.as_ref().map(|f| {
        html! {
            <p id="seed-summary" class="ok">
                {format!("{}: {} distinct ids{}, {} in the pool of {}: match rate {}",
                    s.name, thousands(f.listed),
                    if f.duplicates > 0 { format!(" ({} duplicates dropped)", f.duplicates) } else { String::new() },
                    thousands(f.matched.len()), thousands(assets.pool.users.len()), pct(f.rate()))}
                if let Some(p) = &store.plan {
                    {format!(" · fine-tuning on {} seeds + {} sampled non-seeds, {} seeds held out to check the model",
                        thousands(p.train_seeds.len()), thousands(p.negatives.len()), p.held.len())}
                }
            </p>
        }
    });
    html! {
        <section id="seeds">
            <h2>{"Your seed list"}</h2>
            <p class="explain">{"The seeds are users who already converted for this campaign. A CSV or text file of user ids: one per line, or a column named uid; header optional. The page matches them against the pool; the rest of the pool are the candidates."}</p>
            <div class={classes!("drop", (*dragging).then_some("over"))} {ondrop} {ondragover} {ondragleave}>
                <label>{"Drop a file here or "}
                    <input type="file" id="seed-file" accept=".csv,.txt,.tsv,text/csv,text/plain" {onchange}/>
                </label>
            </div>
            {real.unwrap_or_default()}
            {summary.unwrap_or_default()}
            if let Some(w) = store.plan.as_ref().and_then(|p| p.warning.as_ref()) {
                <p class="warning" id="seed-warning">{w}</p>
            }
            if let Some(e) = &s.error {
                <p class="error" id="seed-error">{e}</p>
            }
        </section>
    }
}
