//! PNG plots drawn without system fonts (the text uses the Hack font embedded by the
//! `epaint_default_fonts` crate): line charts stacked in panels, and the three the evaluation
//! writes — forecast against truth, NRMSE over the horizon, and loss curves.
//!
//! Files are drawn under a temporary name and renamed into place, like every other output.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{Error, Result};

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend label (empty: no legend entry).
    pub label: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Colour as RGB.
    pub color: (u8, u8, u8),
}

/// One chart of a figure.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
}

const BLACK_RGB: (u8, u8, u8) = (0, 0, 0);
const GREY_RGB: (u8, u8, u8) = (150, 150, 150);
const RED_RGB: (u8, u8, u8) = (214, 39, 40);
const BLUE_RGB: (u8, u8, u8) = (31, 119, 180);

/// Draws `panels` stacked vertically into a PNG of `width × (height per panel)` pixels.
pub fn render(path: &Path, panels: &[Panel], width: u32, panel_height: u32) -> Result<()> {
    if panels.is_empty()
        || panels
            .iter()
            .any(|p| p.lines.iter().all(|l| l.points.is_empty()))
    {
        return Err(Error::config(
            "plot",
            "every panel needs at least one point",
        ));
    }
    write_png(path, |tmp| draw(tmp, panels, width, panel_height))
}

/// Draws into a temporary PNG beside `path` with `draw` and renames it into place; the
/// temporary file is removed on failure.
fn write_png(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    ensure_font(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::storage(path, "it has no file name"))?
        .to_string_lossy();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The bitmap backend picks the encoder from the extension: keep `.png` last.
    let tmp = parent.join(format!(".{name}.{}.tmp.png", std::process::id()));
    let result = draw(&tmp)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn draw(tmp: &Path, panels: &[Panel], width: u32, panel_height: u32) -> Result<()> {
    let fail =
        |e: &dyn std::fmt::Display| Error::storage(tmp, format!("cannot draw the plot ({e})"));
    let height = panel_height * panels.len() as u32;
    let root = BitMapBackend::new(tmp, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, panel).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(
    area: &Area<'_>,
    panel: &Panel,
) -> std::result::Result<
    (),
    DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>,
> {
    let points = panel.lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style(("sans-serif", 13))
        .draw()?;
    let mut labelled = false;
    for line in &panel.lines {
        let color = RGBColor(line.color.0, line.color.1, line.color.2);
        let series = chart.draw_series(LineSeries::new(
            line.points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if !line.label.is_empty() {
            labelled = true;
            series.label(&line.label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    Ok(())
}

fn ensure_font(path: &Path) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::storage(
            path,
            "the embedded plot font could not be loaded",
        ))
    }
}

/// Training and validation loss per epoch.
pub fn loss_curves(path: &Path, train: &[f64], val: &[f64]) -> Result<()> {
    let line = |label: &str, ys: &[f64], color| Line {
        label: label.into(),
        points: ys
            .iter()
            .enumerate()
            .map(|(i, y)| ((i + 1) as f64, *y))
            .collect(),
        color,
    };
    let panel = Panel {
        title: "loss".into(),
        x_label: "epoch".into(),
        y_label: "MSE (normalised)".into(),
        lines: vec![
            line("train", train, BLUE_RGB),
            line("validation", val, RED_RGB),
        ],
    };
    render(path, &[panel], 800, 450)
}

/// The mean NRMSE e_t over test windows against the horizon step, with the VPT threshold.
pub fn nrmse_over_horizon(path: &Path, per_step: &[f64], threshold: f64) -> Result<()> {
    let steps = per_step.len() as f64;
    let panel = Panel {
        title: "NRMSE over the horizon (mean over test windows)".into(),
        x_label: "step".into(),
        y_label: "NRMSE".into(),
        lines: vec![
            Line {
                label: "model".into(),
                points: per_step
                    .iter()
                    .enumerate()
                    .map(|(i, e)| ((i + 1) as f64, *e))
                    .collect(),
                color: BLUE_RGB,
            },
            Line {
                label: format!("VPT threshold {threshold}"),
                points: vec![(1.0, threshold), (steps.max(2.0), threshold)],
                color: GREY_RGB,
            },
        ],
    };
    render(path, &[panel], 800, 450)
}

/// One test window: the end of the history, the truth and the forecast, one panel per variable
/// (at most `max_vars`). `history`, `truth` and `pred` are row-major with `names.len()` columns;
/// time is in steps of `dt`, 0 at the first forecast step.
pub fn forecast_vs_truth(
    path: &Path,
    names: &[String],
    dt: f64,
    history: &[f64],
    truth: &[f64],
    pred: &[f64],
    max_vars: usize,
) -> Result<()> {
    let vars = names.len();
    if vars == 0
        || truth.len() != pred.len()
        || !truth.len().is_multiple_of(vars)
        || !history.len().is_multiple_of(vars)
    {
        return Err(Error::ShapeMismatch {
            what: "forecast plot".into(),
            expected: format!(
                "history, truth and forecast with {vars} columns, truth and forecast alike"
            ),
            got: format!(
                "{} / {} / {} values",
                history.len(),
                truth.len(),
                pred.len()
            ),
        });
    }
    let past = history.len() / vars;
    let column = |rows: &[f64], d: usize, offset: f64| -> Vec<(f64, f64)> {
        rows.chunks_exact(vars)
            .enumerate()
            .map(|(i, r)| ((i as f64 + offset) * dt, r[d]))
            .collect()
    };
    let panels: Vec<Panel> = (0..vars.min(max_vars.max(1)))
        .map(|d| Panel {
            title: names[d].clone(),
            x_label: "time since the forecast start".into(),
            y_label: names[d].clone(),
            lines: vec![
                Line {
                    label: "history".into(),
                    points: column(history, d, -(past as f64)),
                    color: GREY_RGB,
                },
                Line {
                    label: "truth".into(),
                    points: column(truth, d, 0.0),
                    color: BLACK_RGB,
                },
                Line {
                    label: "forecast".into(),
                    points: column(pred, d, 0.0),
                    color: RED_RGB,
                },
            ],
        })
        .collect();
    render(path, &panels, 900, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from a PNG's IHDR chunk.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn the_three_plots_are_pngs_of_the_stated_size() {
        let dir = tempfile::tempdir().unwrap();
        let loss = dir.path().join("loss.png");
        loss_curves(&loss, &[1.0, 0.5, 0.3], &[1.1, 0.7, 0.6]).unwrap();
        assert_eq!(png_size(&loss), (800, 450));

        let horizon = dir.path().join("nrmse.png");
        nrmse_over_horizon(&horizon, &[0.1, 0.3, 0.5, 0.8], 0.4).unwrap();
        assert_eq!(png_size(&horizon), (800, 450));

        let names: Vec<String> = ["x", "y", "z", "w"].map(String::from).to_vec();
        let history: Vec<f64> = (0..40).map(|i| (i as f64 * 0.3).sin()).collect();
        let truth: Vec<f64> = (0..20).map(|i| (i as f64 * 0.2).cos()).collect();
        let pred: Vec<f64> = truth.iter().map(|v| v * 0.9).collect();
        let forecast = dir.path().join("forecast.png");
        forecast_vs_truth(&forecast, &names, 0.1, &history, &truth, &pred, 3).unwrap();
        assert_eq!(
            png_size(&forecast),
            (900, 900),
            "three panels of 300 pixels"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn bar_series_never_share_a_colour() {
        // compare's default grid has 11 variants, which the old 6-colour palette repeated.
        for n in [1, 11, 20, 21, 55] {
            let colors: Vec<_> = (0..n).map(|j| series_color(j, n)).collect();
            for (a, ca) in colors.iter().enumerate() {
                for cb in &colors[a + 1..] {
                    let gap = [
                        ca.0.abs_diff(cb.0),
                        ca.1.abs_diff(cb.1),
                        ca.2.abs_diff(cb.2),
                    ];
                    assert!(
                        gap.iter().max().unwrap() >= &10,
                        "{n} series: {ca:?} and {cb:?} are too close to tell apart"
                    );
                }
            }
        }
    }

    #[test]
    fn the_bar_chart_keeps_its_legend_beside_the_plot() {
        let dir = tempfile::tempdir().unwrap();
        let groups: Vec<String> = ["lstm", "gru", "fdn", "transformer"]
            .map(String::from)
            .to_vec();
        let bars = |n: usize| -> Vec<Bars> {
            (0..n)
                .map(|j| Bars {
                    label: format!("wr+wr-every={}", 100 + j),
                    values: vec![Some(0.1 * j as f64), None, Some(0.5), Some(1.0)],
                    errors: vec![0.01; 4],
                })
                .collect()
        };
        let path = dir.path().join("bars.png");
        grouped_bars(&path, "t", "y", &groups, &bars(11)).unwrap();
        // The 900-pixel chart, then a legend column of 40 + 8 pixels per character of the
        // longest label (15 here).
        assert_eq!(png_size(&path), (900 + 160, 500));
        grouped_bars(&path, "t", "y", &groups, &bars(40)).unwrap();
        assert_eq!(
            png_size(&path),
            (1060, 60 + 40 * 18),
            "taller for a long legend"
        );
        assert!(grouped_bars(&path, "t", "y", &groups[..3], &bars(2)).is_err());
    }

    #[test]
    fn bad_plot_input_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.png");
        let names = vec!["x".to_string()];
        assert!(forecast_vs_truth(&path, &names, 0.1, &[0.0; 3], &[0.0; 2], &[0.0; 3], 1).is_err());
        assert!(loss_curves(&path, &[], &[]).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

/// One series of a grouped bar chart: a label, and per group a mean and an error-bar half-width.
#[derive(Clone, Debug)]
pub struct Bars {
    /// Legend label.
    pub label: String,
    /// Bar heights, one per group; `None` where the group has no value (no bar is drawn).
    pub values: Vec<Option<f64>>,
    /// Error-bar half-widths (e.g. a standard deviation), one per group.
    pub errors: Vec<f64>,
}

/// Matplotlib's "tab10" colours, then its "tab20" light tones: 20 distinct colours.
const PALETTE: [(u8, u8, u8); 20] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
];

/// The colour of bar series `j` of `n`: the palette while it lasts, otherwise `n` hues spaced
/// evenly around the colour wheel, so that no two series of one chart share a colour.
fn series_color(j: usize, n: usize) -> (u8, u8, u8) {
    if n <= PALETTE.len() {
        return PALETTE[j];
    }
    let hue = j as f64 / n as f64;
    // HSL with saturation 0.65 and lightness 0.5 (alternating 0.35 so neighbours differ more).
    let (s, l) = (0.65, if j.is_multiple_of(2) { 0.5 } else { 0.35 });
    let c = (1.0 - (2.0 * l - 1.0f64).abs()) * s;
    let h6 = hue * 6.0;
    let x = c * (1.0 - (h6 % 2.0 - 1.0).abs());
    let (r, g, b) = match h6 as usize {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (byte(r), byte(g), byte(b))
}

/// Pixels per legend entry of a bar chart.
const LEGEND_LINE: u32 = 18;

/// A grouped bar chart with error bars: one cluster per group (e.g. a model), one bar per series
/// (e.g. a bio variant) in a colour of its own, group names above the clusters, and the legend
/// in a column right of the chart (the figure is 900 pixels plus that column wide).
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Bars],
) -> Result<()> {
    if groups.is_empty()
        || series.is_empty()
        || series
            .iter()
            .any(|s| s.values.len() != groups.len() || s.errors.len() != groups.len())
    {
        return Err(Error::config(
            "plot",
            "every bar series needs one value and one error per group",
        ));
    }
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().zip(&s.errors).filter_map(|(v, e)| v.map(|v| v + e)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        // Headroom for the group names above the clusters.
        * 1.08;
    write_png(path, |tmp| {
        let fail = |e: String| Error::storage(tmp, format!("cannot draw the plot ({e})"));
        bars(tmp, title, y_label, groups, series, top).map_err(fail)
    })
}

fn bars(
    tmp: &Path,
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Bars],
    top: f64,
) -> std::result::Result<(), String> {
    {
        // The legend gets its own column right of the chart, so that it never hides a bar or a
        // group name; the figure grows taller when the legend needs it.
        let longest = series
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0);
        let legend_width = (40 + 8 * longest as u32).clamp(120, 400);
        let height = 500.max(60 + LEGEND_LINE * series.len() as u32);
        let root = BitMapBackend::new(tmp, (900 + legend_width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot, legend) = root.split_horizontally(900);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(10)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..groups.len() as f64, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc(y_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        let width = 0.8 / series.len() as f64;
        for (j, s) in series.iter().enumerate() {
            let (r, g, b) = series_color(j, series.len());
            let color = RGBColor(r, g, b);
            let x = |i: usize| i as f64 + 0.1 + j as f64 * width;
            chart
                .draw_series(s.values.iter().enumerate().filter_map(|(i, v)| {
                    v.map(|v| {
                        Rectangle::new([(x(i), 0.0), (x(i) + width * 0.9, v)], color.filled())
                    })
                }))
                .map_err(|e| e.to_string())?;
            let y = 40 + (LEGEND_LINE * j as u32) as i32;
            legend
                .draw(&Rectangle::new([(8, y), (20, y + 10)], color.filled()))
                .map_err(|e| e.to_string())?;
            legend
                .draw(&Text::new(
                    s.label.clone(),
                    (28, y - 1),
                    ("sans-serif", 13).into_font().color(&BLACK),
                ))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(s.values.iter().zip(&s.errors).enumerate().filter_map(
                    |(i, (v, e))| {
                        let v = (*v)?;
                        let mid = x(i) + width * 0.45;
                        Some(PathElement::new(
                            vec![(mid, v - e), (mid, v + e)],
                            BLACK.stroke_width(1),
                        ))
                    },
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(groups.iter().enumerate().map(|(i, g)| {
                Text::new(g.clone(), (i as f64 + 0.1, top * 0.97), ("sans-serif", 15))
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}
