use super::use_store;
use lookalike_core::finetune::GateWeights;
use yew::prelude::*;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// The general model's gates for every demo campaign, grouped by ad category (the paper's Fig. 3d):
/// campaigns of one category should use the experts and critics alike.
#[function_component(GateMap)]
pub fn gate_map() -> Html {
    let store = use_store();
    let Some(assets) = &store.assets else {
        return html! {};
    };
    let gates = match &store.campaign_gates {
        None => {
            return html! { <p class="loading" id="gate-map-loading">{"computing the gates of every campaign…"}</p> };
        }
        Some(Err(e)) => return html! { <p class="error">{e}</p> },
        Some(Ok(g)) => g.clone(),
    };
    let schema = &assets.header.schema;
    let cat_field = schema
        .ad
        .iter()
        .position(|f| f.name == "adCategoryId")
        .unwrap_or(0);
    let campaigns = &assets.pool.campaigns;
    let category = |i: usize| {
        let id = campaigns[i].ad.get(cat_field).copied().unwrap_or(0);
        schema.ad[cat_field]
            .vocab
            .token(id)
            .unwrap_or("?")
            .to_string()
    };
    let mut order: Vec<usize> = (0..campaigns.len()).collect();
    order.sort_by_key(|&i| (category(i), campaigns[i].aid.clone()));
    let joined =
        |g: &GateWeights| -> Vec<f32> { g.expert.iter().chain(&g.critic).copied().collect() };
    // Within- vs between-category similarity of the gate vectors.
    let (mut within, mut nw, mut between, mut nb) = (0.0, 0usize, 0.0, 0usize);
    for i in 0..campaigns.len() {
        for j in i + 1..campaigns.len() {
            let c = cosine(&joined(&gates[i]), &joined(&gates[j]));
            if category(i) == category(j) {
                within += c;
                nw += 1;
            } else {
                between += c;
                nb += 1;
            }
        }
    }
    let experts = gates.first().map_or(0, |g| g.expert.len());
    let critics = gates.first().map_or(0, |g| g.critic.len());
    let max_e = gates
        .iter()
        .flat_map(|g| g.expert.iter())
        .copied()
        .fold(1e-6f32, f32::max);
    let max_c = gates
        .iter()
        .flat_map(|g| g.critic.iter())
        .copied()
        .fold(1e-6f32, f32::max);
    let cell = |v: f32, max: f32, hue: u32| {
        let a = (v / max).clamp(0.0, 1.0);
        html! { <td style={format!("background:hsla({hue},70%,45%,{a:.2})")} title={format!("{v:.3}")}></td> }
    };
    let rows = order.iter().map(|&i| {
        let g = &gates[i];
        let c = &campaigns[i];
        let selected = store.campaign == Some(i);
        html! {
            <tr class={classes!(selected.then_some("selected"))}>
                <th>{format!("{} · {} · {:?}", category(i), c.aid, c.role).to_lowercase()}</th>
                {for g.expert.iter().map(|&v| cell(v, max_e, 220))}
                <td class="gap"></td>
                {for g.critic.iter().map(|&v| cell(v, max_c, 150))}
            </tr>
        }
    });
    html! {
        <div id="gate-map">
            <h3>{"Across campaigns (the paper's Fig. 3d)"}</h3>
            <p class="explain">{format!(
                "Each row is a demo campaign, labelled category · aid · role, sorted by {}; each cell is the general model's gate weight, averaged over the campaign's seeds (darker = more weight). Campaigns of one category should look alike.",
                schema.ad[cat_field].name)}</p>
            if nw > 0 && nb > 0 {
                <p id="gate-similarity">{format!(
                    "Mean cosine similarity of the gate vectors: {:.3} within a category, {:.3} between categories.",
                    within / nw as f64, between / nb as f64)}</p>
            }
            <table class="heat">
                <thead><tr><th>{"category · aid · role"}</th>
                    {for (1..=experts).map(|e| html! { <th>{format!("E{e}")}</th> })}
                    <th class="gap"></th>
                    {for (1..=critics).map(|c| html! { <th>{format!("C{c}")}</th> })}
                </tr></thead>
                <tbody>{for rows}</tbody>
            </table>
        </div>
    }
}
