use super::use_store;
use crate::state::Action;
use lookalike_core::data::Role;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

/// The new campaign: a held-out demo campaign (its ad features, and optionally its real seeds), or ad
/// features set by hand.
#[function_component(CampaignPanel)]
pub fn campaign_panel() -> Html {
    let store = use_store();
    let Some(assets) = store.assets.clone() else {
        return html! {};
    };
    let schema = &assets.header.schema;
    let pick = {
        let dispatch = store.dispatcher();
        Callback::from(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlSelectElement>().value();
            dispatch.dispatch(Action::PickCampaign(v.parse::<usize>().ok()));
        })
    };
    let option = |i: usize| {
        let c = &assets.pool.campaigns[i];
        let seeds = c.stage1.iter().filter(|r| r.label).count();
        html! {
            <option value={i.to_string()} selected={store.campaign == Some(i)}>
                {format!("aid {} · {} seeds", c.aid, seeds)}
            </option>
        }
    };
    let group = |role: Role, label: &str| {
        let ids: Vec<usize> = (0..assets.pool.campaigns.len())
            .filter(|&i| assets.pool.campaigns[i].role == role)
            .collect();
        if ids.is_empty() {
            return html! {};
        }
        html! { <optgroup label={label.to_string()}>{for ids.into_iter().map(option)}</optgroup> }
    };
    let fields = schema.ad.iter().enumerate().map(|(f, field)| {
        let dispatch = store.dispatcher();
        let onchange = Callback::from(move |e: Event| {
            let id = e
                .target_unchecked_into::<HtmlSelectElement>()
                .value()
                .parse()
                .unwrap_or(0);
            dispatch.dispatch(Action::SetAd { field: f, id });
        });
        let current = store.ad.get(f).copied().unwrap_or(0);
        html! {
            <label class="field">{&field.name}
                <select id={format!("ad-{}", field.name)} {onchange}>
                    <option value="0" selected={current == 0}>{"(unknown)"}</option>
                    {for field.vocab.tokens().iter().enumerate().map(|(i, t)| {
                        let id = i as u32 + 1;
                        html! { <option value={id.to_string()} selected={current == id}>{t}</option> }
                    })}
                </select>
            </label>
        }
    });
    html! {
        <section id="campaign">
            <h2>{"The new campaign"}</h2>
            <p class="explain">{"The model reads the campaign's ad features (advertiser, category, product…) to decide which experts and critics to trust. Pick a demo campaign that was held out of meta-training, or set the features by hand."}</p>
            <label>{"demo campaign "}
                <select id="campaign-select" onchange={pick}>
                    <option value="" selected={store.campaign.is_none()}>{"(ad features set by hand)"}</option>
                    {group(Role::Cold, "held out, few seeds (cold)")}
                    {group(Role::Hot, "held out, many seeds (hot)")}
                    {group(Role::Train, "used in meta-training")}
                </select>
            </label>
            <div class="ad-fields">{for fields}</div>
        </section>
    }
}
