//! `bench --svg DIR`: the paper's figures as SVG files (plotters, no font files: the viewer draws text).

use anyhow::{Context, Result, anyhow};
use lookalike_core::finetune::TracePoint;
use plotters::coord::CoordTranslate;
use plotters::prelude::*;
use std::path::Path;

/// Mean ± std over seeds of one method's AUC in each of two series (cold and hot campaigns; or the
/// multi-task mode's CTR and CTCVR).
pub struct MethodAuc<'a> {
    pub name: &'a str,
    pub values: [Option<(f64, f64)>; 2],
}

/// One method's AUC per test campaign (averaged over seeds) with the campaign's seed count.
pub struct BySeeds<'a> {
    pub name: &'a str,
    pub points: Vec<(usize, f64)>,
}

/// One method's traced fine-tune on the chosen campaign.
pub struct Curve<'a> {
    pub name: &'a str,
    pub points: Vec<TracePoint>,
}

const WIDTH: u32 = 960;
const COLD: RGBColor = RGBColor(31, 119, 180);
const HOT: RGBColor = RGBColor(214, 39, 40);

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// Draws with `draw` into an SVG string and writes it atomically.
fn write_svg(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    lookalike_data::atomic::write_atomic(path, |w| w.write_all(svg.as_bytes()))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// The series labels in a framed box at `corner`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    corner: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// A y range that shows every value with a little room, never empty.
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    lo - pad..hi + pad
}

/// AUC per method with error bars (± one std over seeds), the two series (`labels`) side by side:
/// Tables 2 and 4 at a glance. Methods run down the y axis so their names stay readable.
pub fn auc_by_method(
    path: &Path,
    title: &str,
    x_desc: &str,
    labels: [&str; 2],
    methods: &[MethodAuc],
) -> Result<()> {
    let n = methods.len();
    let height = 120 + 34 * n as u32;
    let range = padded(
        methods
            .iter()
            .flat_map(|m| m.values)
            .flatten()
            .flat_map(|(m, s)| [m - s, m + s]),
    );
    // Room on the right for the legend.
    let range = range.start..range.end + 0.25 * (range.end - range.start);
    write_svg(path, (WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(210)
            .build_cartesian_2d(range, -0.5..n as f64 - 0.5)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                    // Top to bottom in the order given.
                    methods[n - 1 - i as usize].name.to_string()
                } else {
                    String::new()
                }
            })
            .x_desc(x_desc)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (label, offset, color, pick) in [
            (labels[0], 0.15, COLD, 0usize),
            (labels[1], -0.15, HOT, 1usize),
        ] {
            let bars: Vec<(f64, f64, f64)> = methods
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    m.values[pick].map(|(mean, sd)| ((n - 1 - i) as f64 + offset, mean, sd))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|&(y, m, s)| {
                    ErrorBar::new_horizontal(y, m - s, m, m + s, color.filled(), 8)
                }))
                .map_err(|e| anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(y, m, _)| Circle::new((m, y), 4, color.filled())),
                )
                .map_err(|e| anyhow!("{e}"))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// Mean AUC against seed-set size: test campaigns binned by seed count (powers of two), one line per
/// method, x on a log scale.
pub fn auc_by_seeds(path: &Path, title: &str, methods: &[BySeeds]) -> Result<()> {
    // Bin k holds seed counts in [2^k, 2^(k+1)).
    let bin = |s: usize| (s.max(1) as f64).log2().floor() as u32;
    let binned: Vec<Vec<(f64, f64)>> = methods
        .iter()
        .map(|m| {
            let mut bins: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
            for &(s, auc) in &m.points {
                bins.entry(bin(s)).or_default().push(auc);
            }
            bins.into_iter()
                .map(|(k, v)| {
                    let centre = 2f64.powf(k as f64 + 0.5);
                    (centre, v.iter().sum::<f64>() / v.len() as f64)
                })
                .collect()
        })
        .collect();
    let xs = binned.iter().flatten().map(|p| p.0);
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo > hi {
        (1.0, 2.0)
    } else {
        (lo / 1.5, hi * 1.5)
    };
    let range = padded(binned.iter().flatten().map(|p| p.1));
    write_svg(path, (WIDTH, 540), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), range)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("seeds in the campaign's stage-1 rows (bins of powers of two)")
            .y_desc("mean AUC of the bin")
            .x_labels(12)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (m, pts)) in methods.iter().zip(&binned).enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(m.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, c.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// Fine-tuning curves on one campaign (the paper's Fig. 3): held-out loss (points at each check, the
/// mini-batch loss as a thin line) in one file, the candidates' AUC in another.
pub fn finetune_curves(
    loss_path: &Path,
    auc_path: &Path,
    title: &str,
    curves: &[Curve],
) -> Result<()> {
    let max_step = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.step))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let loss_range = padded(curves.iter().flat_map(|c| {
        c.points
            .iter()
            .flat_map(|p| [Some(p.loss as f64), p.holdout_loss.map(f64::from)])
            .flatten()
    }));
    let auc_range = padded(
        curves
            .iter()
            .flat_map(|c| c.points.iter().filter_map(|p| p.auc)),
    );
    type Pick = fn(&TracePoint) -> Option<f64>;
    let panels: [(&Path, &str, std::ops::Range<f64>, Pick); 2] = [
        (
            loss_path,
            "loss (points: held-out rows; line: mini-batch)",
            loss_range,
            |p| p.holdout_loss.map(f64::from),
        ),
        (auc_path, "AUC of the candidates", auc_range, |p| p.auc),
    ];
    for (i, (path, y_desc, range, pick)) in panels.into_iter().enumerate() {
        write_svg(path, (WIDTH, 540), |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(title, ("sans-serif", 20))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..max_step, range)
                .map_err(|e| anyhow!("{e}"))?;
            chart
                .configure_mesh()
                .x_desc("fine-tuning step")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_desc(y_desc)
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
            for (k, c) in curves.iter().enumerate() {
                let col = color(k);
                if i == 0 {
                    let batch = c
                        .points
                        .iter()
                        .filter(|p| p.loss.is_finite())
                        .map(|p| (p.step as f64, p.loss as f64));
                    chart
                        .draw_series(LineSeries::new(batch, col.mix(0.35).stroke_width(1)))
                        .map_err(|e| anyhow!("{e}"))?;
                }
                let checks: Vec<(f64, f64)> = c
                    .points
                    .iter()
                    .filter_map(|p| pick(p).map(|v| (p.step as f64, v)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(checks.clone(), col.stroke_width(2)))
                    .map_err(|e| anyhow!("{e}"))?
                    .label(c.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2))
                    });
                chart
                    .draw_series(
                        checks
                            .iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, col.filled())),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
            }
            let corner = if i == 0 {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            };
            legend(&mut chart, corner)?;
            Ok(())
        })?;
    }
    Ok(())
}
