use super::gate_bars::GateBars;
use super::gate_map::GateMap;
use super::use_store;
use crate::engine;
use crate::state::{Action, RunKind};
use std::rc::Rc;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

/// MetaHeac's two gates: which experts (representations) and which critics (scorers) a campaign uses.
#[function_component(GatesPanel)]
pub fn gates_panel() -> Html {
    let store = use_store();
    // The heat map is computed the first time this tab opens.
    {
        let assets = store.assets.clone();
        let needed = store.campaign_gates.is_none();
        let dispatch = store.dispatcher();
        use_effect_with(needed, move |needed| {
            if let (true, Some(a)) = (*needed, assets) {
                spawn_local(async move {
                    let r = engine::campaign_gates(a).await.map(Rc::new);
                    dispatch.dispatch(Action::CampaignGates(r));
                });
            }
        });
    }
    let run = store.run(RunKind::Main);
    let before = run.and_then(|r| r.gates_before.clone());
    let after = run.and_then(|r| r.gates_after.clone());
    // A general model whose validation campaigns chose one expert (`MetaConfig::select_experts`)
    // has a constant expert gate: say why, as the record does.
    let one_expert = store.assets.as_ref().and_then(|a| {
        let h = &a.header;
        (h.model.num_experts == 1).then(|| match &h.training.experts {
            Some(e) => format!(
                "This general model has one expert, so its expert gate is 1 for every campaign: its validation campaigns (training campaigns held out) scored it above the model with more ({}). Where every campaign follows one relation, one expert generalises better; the critics still mix.",
                e.tried_summary()
            ),
            None => "This general model has one expert, so its expert gate is 1 for every campaign; the critics still mix.".to_string(),
        })
    });
    html! {
        <section id="gates">
            <h2>{"Experts and critics"}</h2>
            <p class="explain">{"MetaHeac represents a user with several experts and scores them with several critics. Two gates, driven by the campaign (its ad features and the users), mix them: ŷ = Σⱼ cⱼ·σ(Tⱼ(Σₖ gₖ·Eₖ(x))) (Eq. 9). Related campaigns share experts and critics; fine-tuning moves the mix towards what this campaign needs."}</p>
            if let Some(text) = one_expert {
                <p class="explain" id="one-expert">{text}</p>
            }
            if before.is_none() {
                <p class="muted">{"Fine-tune on a seed list (tab 1) to see this campaign's gates before and after."}</p>
            }
            <div class="charts">
                <GateBars id="expert-gates" title="Expert gate g (this campaign's seeds)" unit="E"
                    before={before.as_ref().map(|g| g.expert.clone())} after={after.as_ref().map(|g| g.expert.clone())}/>
                <GateBars id="critic-gates" title="Critic gate c (this campaign's seeds)" unit="C"
                    before={before.as_ref().map(|g| g.critic.clone())} after={after.as_ref().map(|g| g.critic.clone())}/>
            </div>
            <GateMap/>
        </section>
    }
}
