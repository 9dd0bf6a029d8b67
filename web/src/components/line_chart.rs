use yew::prelude::*;

#[derive(Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: String,
    /// (x, y)
    pub points: Vec<(f64, f64)>,
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: AttrValue,
    pub title: AttrValue,
    pub series: Vec<Series>,
    pub x_label: AttrValue,
    /// Fixed y range; otherwise the data's.
    pub y_range: Option<(f64, f64)>,
}

const W: f64 = 440.0;
const H: f64 = 190.0;
const L: f64 = 46.0;
const R: f64 = 10.0;
const T: f64 = 10.0;
const B: f64 = 30.0;

/// A small SVG line chart (live learning curves).
#[function_component(LineChart)]
pub fn line_chart(p: &Props) -> Html {
    let all: Vec<(f64, f64)> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let x_max = all.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let (mut y0, mut y1) = p.y_range.unwrap_or_else(|| {
        let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() {
            (lo.min(0.0), hi)
        } else {
            (0.0, 1.0)
        }
    });
    if p.y_range.is_some() {
        // Keep points outside a fixed range visible.
        y0 = all.iter().map(|p| p.1).fold(y0, f64::min);
        y1 = all.iter().map(|p| p.1).fold(y1, f64::max);
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let sx = |x: f64| L + x / x_max * (W - L - R);
    let sy = |y: f64| T + (1.0 - (y - y0) / (y1 - y0)) * (H - T - B);
    let lines = p.series.iter().map(|s| {
        let pts: String = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1} ", sx(x), sy(y)))
            .collect();
        let last = s.points.last().copied();
        html! {
            <g>
                <polyline points={pts} fill="none" stroke={s.color.clone()} stroke-width="2"/>
                if let Some((x, y)) = last {
                    <circle cx={format!("{:.1}", sx(x))} cy={format!("{:.1}", sy(y))} r="3" fill={s.color.clone()}/>
                }
            </g>
        }
    });
    let ticks = (0..=4).map(|i| {
        let y = y0 + (y1 - y0) * i as f64 / 4.0;
        html! {
            <g>
                <line x1={L.to_string()} x2={(W - R).to_string()} y1={format!("{:.1}", sy(y))} y2={format!("{:.1}", sy(y))} class="grid"/>
                <text x={(L - 4.0).to_string()} y={format!("{:.1}", sy(y) + 4.0)} text-anchor="end" class="tick">{format!("{y:.3}")}</text>
            </g>
        }
    });
    let legend = p.series.iter().map(|s| {
        let last = s.points.last().map_or(String::new(), |p| format!(" {:.3}", p.1));
        html! { <span class="legend"><i style={format!("background:{}", s.color)}></i>{format!("{}{last}", s.name)}</span> }
    });
    html! {
        <figure class="chart" id={p.id.clone()} data-points={all.len().to_string()}>
            <figcaption>{p.title.clone()}</figcaption>
            <svg viewBox={format!("0 0 {W} {H}")} role="img" aria-label={p.title.clone()}>
                {for ticks}
                <line x1={L.to_string()} x2={L.to_string()} y1={T.to_string()} y2={(H - B).to_string()} class="axis"/>
                <line x1={L.to_string()} x2={(W - R).to_string()} y1={(H - B).to_string()} y2={(H - B).to_string()} class="axis"/>
                <text x={L.to_string()} y={(H - 12.0).to_string()} class="tick">{"0"}</text>
                <text x={(W - R).to_string()} y={(H - 12.0).to_string()} text-anchor="end" class="tick">{format!("{x_max:.0}")}</text>
                <text x={((L + W) / 2.0).to_string()} y={(H - 2.0).to_string()} text-anchor="middle" class="tick">{p.x_label.clone()}</text>
                {for lines}
            </svg>
            <div class="legends">{for legend}</div>
        </figure>
    }
}
