use super::use_store;
use std::collections::HashMap;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// Pool indices of the expanded audience.
    pub audience: std::rc::Rc<Vec<u32>>,
}

/// Fields a marketer recognises, when the schema has them.
const PREFERRED: [&str; 4] = ["age", "gender", "consumptionAbility", "education"];
const SHOWN: usize = 5;

/// How the expansion compares with the seeds and the whole pool on a few user features.
#[function_component(Composition)]
pub fn composition(p: &Props) -> Html {
    let store = use_store();
    let (Some(assets), Some(found)) = (&store.assets, &store.seeds.found) else {
        return html! {};
    };
    let schema = &assets.header.schema;
    let users = &assets.pool.users;
    let mut fields: Vec<usize> = PREFERRED
        .iter()
        .filter_map(|n| schema.user_single.iter().position(|f| f.name == *n))
        .collect();
    if fields.is_empty() {
        fields = (0..schema.user_single.len().min(3)).collect();
    }
    let share = |f: usize, members: &mut dyn Iterator<Item = u32>| {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let mut n = 0usize;
        for u in members {
            *counts.entry(users.single_of(u as usize)[f]).or_default() += 1;
            n += 1;
        }
        (counts, n.max(1))
    };
    let tables = fields.into_iter().map(|f| {
        let field = &schema.user_single[f];
        let (pool, np) = share(f, &mut (0..users.len() as u32));
        let (seeds, ns) = share(f, &mut found.matched.iter().copied());
        let (aud, na) = share(f, &mut p.audience.iter().copied());
        let mut values: Vec<(u32, usize)> = pool.iter().map(|(&k, &v)| (k, v)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let cell = |c: &HashMap<u32, usize>, n: usize, v: u32| {
            let x = *c.get(&v).unwrap_or(&0) as f64 / n as f64;
            html! { <td><span class="minibar" style={format!("width:{:.0}px", x * 60.0)}></span>{format!("{:.0} %", x * 100.0)}</td> }
        };
        let rows = values.iter().take(SHOWN).map(|&(v, _)| {
            let name = field.vocab.token(v).unwrap_or("unknown").to_string();
            html! { <tr><th>{name}</th>{cell(&seeds, ns, v)}{cell(&aud, na, v)}{cell(&pool, np, v)}</tr> }
        });
        html! {
            <table class="composition">
                <caption>{&field.name}</caption>
                <thead><tr><th></th><th>{"seeds"}</th><th>{"audience"}</th><th>{"pool"}</th></tr></thead>
                <tbody>{for rows}</tbody>
            </table>
        }
    });
    html! {
        <div id="composition">
            <h3>{"Who is in the audience?"}</h3>
            <p class="explain">{"Share of each value among the seeds, the expanded audience and the whole pool (most common values of the pool shown). A good expansion looks more like the seeds than like the pool."}</p>
            <div class="tables">{for tables}</div>
        </div>
    }
}
