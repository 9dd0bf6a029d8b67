use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub scores: std::rc::Rc<Vec<f32>>,
    /// Scores at or above this are in the audience.
    pub cutoff: f32,
}

const BINS: usize = 40;
const W: f64 = 440.0;
const H: f64 = 160.0;

/// Candidate scores with the audience cut-off.
#[function_component(Histogram)]
pub fn histogram(p: &Props) -> Html {
    let lo = p.scores.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = p.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !lo.is_finite() || !hi.is_finite() {
        return html! {};
    }
    let width = ((hi - lo) / BINS as f64).max(1e-12);
    let mut counts = [0usize; BINS];
    for &s in p.scores.iter() {
        counts[(((s as f64 - lo) / width) as usize).min(BINS - 1)] += 1;
    }
    let max = *counts.iter().max().unwrap_or(&1) as f64;
    let bw = W / BINS as f64;
    let bars = counts.iter().enumerate().map(|(i, &c)| {
        let h = c as f64 / max * (H - 20.0);
        let left = lo + i as f64 * width;
        let class = if left + width > p.cutoff as f64 { "in" } else { "out" };
        html! {
            <rect x={format!("{:.1}", i as f64 * bw)} y={format!("{:.1}", H - 20.0 - h)} width={format!("{:.1}", bw - 1.0)} height={format!("{h:.1}")} class={class}>
                <title>{format!("{left:.4}–{:.4}: {c} users", left + width)}</title>
            </rect>
        }
    });
    let cx = (p.cutoff as f64 - lo) / (hi - lo).max(1e-12) * W;
    html! {
        <figure class="chart" id="histogram">
            <figcaption>{"Scores of all candidates; the audience is right of the line"}</figcaption>
            <svg viewBox={format!("0 0 {W} {H}")}>
                {for bars}
                <line x1={format!("{cx:.1}")} x2={format!("{cx:.1}")} y1="0" y2={(H - 20.0).to_string()} class="cut"/>
                <text x="0" y={(H - 4.0).to_string()} class="tick">{format!("{lo:.3}")}</text>
                <text x={W.to_string()} y={(H - 4.0).to_string()} text-anchor="end" class="tick">{format!("{hi:.3}")}</text>
                <text x={format!("{:.1}", cx.clamp(40.0, W - 40.0))} y={(H - 4.0).to_string()} text-anchor="middle" class="tick cut-label">{format!("cut-off {:.4}", p.cutoff)}</text>
            </svg>
        </figure>
    }
}
