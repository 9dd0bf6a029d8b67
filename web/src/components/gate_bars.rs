use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: AttrValue,
    pub title: AttrValue,
    /// Symbol of the units: "E" (experts) or "C" (critics).
    pub unit: AttrValue,
    pub before: Option<Vec<f32>>,
    pub after: Option<Vec<f32>>,
}

/// Gate weights per expert (or critic), before and after fine-tuning, side by side.
#[function_component(GateBars)]
pub fn gate_bars(p: &Props) -> Html {
    let n = p
        .before
        .as_ref()
        .or(p.after.as_ref())
        .map_or(0, |v| v.len());
    if n == 0 {
        return html! {};
    }
    let max = p
        .before
        .iter()
        .chain(p.after.iter())
        .flatten()
        .copied()
        .fold(0.0f32, f32::max)
        .max(1e-6);
    let (w, h) = (440.0f64, 150.0f64);
    let slot = w / n as f64;
    let bar = |v: &Option<Vec<f32>>, i: usize, offset: f64, class: &'static str| {
        v.as_ref().map(|v| {
            let y = v[i] as f64 / max as f64 * (h - 34.0);
            html! {
                <rect x={format!("{:.1}", i as f64 * slot + offset)} y={format!("{:.1}", h - 20.0 - y)}
                    width={format!("{:.1}", slot * 0.38)} height={format!("{y:.1}")} class={class}>
                    <title>{format!("{}{}: {:.3}", p.unit, i + 1, v[i])}</title>
                </rect>
            }
        })
    };
    let groups = (0..n).map(|i| {
        html! {
            <g>
                {bar(&p.before, i, slot * 0.1, "before").unwrap_or_default()}
                {bar(&p.after, i, slot * 0.5, "after").unwrap_or_default()}
                <text x={format!("{:.1}", (i as f64 + 0.5) * slot)} y={(h - 5.0).to_string()} text-anchor="middle" class="tick">{format!("{}{}", p.unit, i + 1)}</text>
            </g>
        }
    });
    html! {
        <figure class="chart" id={p.id.clone()}>
            <figcaption>{p.title.clone()}</figcaption>
            <svg viewBox={format!("0 0 {w} {h}")}>{for groups}</svg>
            <div class="legends">
                <span class="legend"><i class="before"></i>{"general model (before fine-tuning)"}</span>
                if p.after.is_some() {
                    <span class="legend"><i class="after"></i>{"after fine-tuning"}</span>
                }
            </div>
        </figure>
    }
}
