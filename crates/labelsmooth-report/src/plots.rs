//! The figures of the report, each written as PNG and SVG with plotters.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary, so figures look the same on machines
//! without fonts.

use std::path::Path;

use anyhow::{Result, anyhow};
use labelsmooth::calibration::ReliabilityBin;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font under the name `sans-serif` (once).
pub fn init_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is valid TrueType: registration only fails on a corrupt file.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// Draws the figure twice, into `dir/name.png` and `dir/name.svg`.
macro_rules! both {
    ($dir:expr, $name:expr, ($w:expr, $h:expr), |$root:ident| $body:block) => {{
        init_font();
        let png = $dir.join(format!("{}.png", $name));
        {
            let $root = BitMapBackend::new(&png, ($w, $h)).into_drawing_area();
            $root.fill(&WHITE).map_err(err)?;
            $body
            $root.present().map_err(err)?;
        }
        let svg = $dir.join(format!("{}.svg", $name));
        {
            let $root = SVGBackend::new(&svg, ($w, $h)).into_drawing_area();
            $root.fill(&WHITE).map_err(err)?;
            $body
            $root.present().map_err(err)?;
        }
        Ok::<(), anyhow::Error>(())
    }};
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const GREY: RGBColor = RGBColor(150, 150, 150);

fn series_color(i: usize) -> RGBColor {
    [
        BLUE,
        ORANGE,
        GREEN,
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ][i % 6]
}

/// Histogram of top-label confidences, one panel per series: smoothing pulls them away from 1.
pub fn confidence_histogram(dir: &Path, name: &str, series: &[(String, Vec<f32>)]) -> Result<()> {
    both!(dir, name, (900, 380), |root| {
        let panels = root.split_evenly((1, series.len().max(1)));
        for (i, ((label, conf), area)) in series.iter().zip(panels.iter()).enumerate() {
            let mut counts = [0usize; 20];
            for &c in conf {
                counts[((c * 20.0) as usize).min(19)] += 1;
            }
            let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.1 + 1.0;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("Confidence: {label}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..1.0, 0.0..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("top-label confidence")
                .y_desc("samples")
                .y_label_formatter(&whole)
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(counts.iter().enumerate().map(|(b, &n)| {
                    Rectangle::new(
                        [(b as f64 / 20.0, 0.0), ((b + 1) as f64 / 20.0, n as f64)],
                        series_color(i).mix(0.8).filled(),
                    )
                }))
                .map_err(err)?;
        }
    })
}

/// Grouped bars of the softmax outputs of one example under several models.
pub fn softmax_bars(
    dir: &Path,
    name: &str,
    class_names: &[String],
    series: &[(String, Vec<f32>)],
) -> Result<()> {
    let series: Vec<(String, Vec<f64>)> = series
        .iter()
        .map(|(l, p)| (l.clone(), p.iter().map(|&v| f64::from(v)).collect()))
        .collect();
    bars(
        dir,
        name,
        &Bars {
            size: (900, 400),
            title: "Softmax output for one test example",
            x_desc: "class",
            y_desc: "probability",
            y_label_area: 50,
            top: Some(1.05),
        },
        class_names,
        &series,
    )
}

/// Reliability diagram: accuracy per confidence bin against the diagonal, the legend in a strip
/// of its own (so that it covers no bar), and the bin counts below.
pub fn reliability_diagram(
    dir: &Path,
    name: &str,
    title: &str,
    bins: &[ReliabilityBin],
    ece: f64,
) -> Result<()> {
    both!(dir, name, (560, 670), |root| {
        let (upper, rest) = root.split_vertically(460);
        let (legend, lower) = rest.split_vertically(30);
        let mut chart = ChartBuilder::on(&upper)
            .caption(format!("{title} (ECE {ece:.3})"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .y_desc("accuracy")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.accuracy)],
                    BLUE.mix(0.75).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(
                bins.iter()
                    .filter(|b| b.count > 0)
                    .map(|b| Circle::new((b.mean_confidence, b.accuracy), 4, ORANGE.filled())),
            )
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                GREY.stroke_width(2),
            ))
            .map_err(err)?;
        let font = ("sans-serif", 12).into_font();
        let y = 15;
        legend
            .draw(&Rectangle::new(
                [(62, y - 6), (76, y + 6)],
                BLUE.mix(0.75).filled(),
            ))
            .map_err(err)?;
        legend
            .draw(&Text::new("accuracy per bin", (82, y - 7), font.clone()))
            .map_err(err)?;
        legend
            .draw(&Circle::new((206, y), 4, ORANGE.filled()))
            .map_err(err)?;
        legend
            .draw(&Text::new(
                "(mean confidence, accuracy)",
                (216, y - 7),
                font.clone(),
            ))
            .map_err(err)?;
        legend
            .draw(&PathElement::new(
                [(400, y), (416, y)],
                GREY.stroke_width(2),
            ))
            .map_err(err)?;
        legend
            .draw(&Text::new("perfect calibration", (422, y - 7), font))
            .map_err(err)?;
        let top = bins.iter().map(|b| b.count).max().unwrap_or(1) as f64 * 1.1 + 1.0;
        let mut counts = ChartBuilder::on(&lower)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..top)
            .map_err(err)?;
        counts
            .configure_mesh()
            .x_desc("confidence")
            .y_desc("samples")
            .y_labels(4)
            .y_label_formatter(&whole)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        counts
            .draw_series(bins.iter().map(|b| {
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, b.count as f64)],
                    GREY.mix(0.8).filled(),
                )
            }))
            .map_err(err)?;
    })
}

/// Mean ± std of a metric per named setting as points with error bars or bars.
pub fn error_bars(
    dir: &Path,
    name: &str,
    (title, x_desc, y_desc): (&str, &str, &str),
    points: &[(String, f64, f64)],
) -> Result<()> {
    let width = panel_width(points);
    both!(dir, name, (width, 420), |root| {
        error_panel(&root, (title, x_desc, y_desc), points, y_desc == "accuracy")?;
    })
}

/// NLL and ECE (mean ± std over folds) per setting, side by side: `(setting, mean, std)` of
/// each.
pub fn calibration_vs_setting(
    dir: &Path,
    name: &str,
    (title, x_desc): (&str, &str),
    nll: &[(String, f64, f64)],
    ece: &[(String, f64, f64)],
) -> Result<()> {
    let width = 2 * panel_width(nll).min(700);
    both!(dir, name, (width, 460), |root| {
        let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
        let panels = root.split_evenly((1, 2));
        error_panel(&panels[0], ("NLL", x_desc, "NLL"), nll, false)?;
        error_panel(&panels[1], ("ECE", x_desc, "ECE"), ece, false)?;
    })
}

/// Width of a figure whose x axis names `points`: wide enough that the names do not overlap.
fn panel_width(points: &[(String, f64, f64)]) -> u32 {
    let longest = points
        .iter()
        .map(|p| p.0.chars().count())
        .max()
        .unwrap_or(1) as u32;
    (140 + points.len() as u32 * (longest * 8 + 24)).clamp(560, 1600)
}

/// One panel of points with error bars; `unit`: a probability-like metric, whose axis stops
/// at 1.
fn error_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    titles: (&str, &str, &str),
    points: &[(String, f64, f64)],
    unit: bool,
) -> Result<()> {
    let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
    let values: Vec<(f64, f64)> = points.iter().map(|p| (p.1, p.2)).collect();
    series_panel(area, titles, &labels, &[values], unit)
}

/// A panel of one or more series of points with error bars (mean ± std) over the same named x
/// positions. Several series are each joined by a line and offset a little sideways so that
/// their bars do not hide each other, in the colours of [`series_color`].
fn series_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (title, x_desc, y_desc): (&str, &str, &str),
    x_labels: &[String],
    series: &[Vec<(f64, f64)>],
    unit: bool,
) -> Result<()> {
    let n = x_labels.len();
    let values = || series.iter().flatten().filter(|(m, _)| m.is_finite());
    let lo = values().map(|(m, s)| m - s).fold(f64::INFINITY, f64::min);
    let hi = values()
        .map(|(m, s)| m + s)
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = ((hi - lo) * 0.25).max(0.005);
    let (mut y0, mut y1) = (lo - pad, hi + pad);
    if unit {
        y1 = y1.min(1.0);
        y0 = y0.max(0.0).min(y1 - 0.01);
    }
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                x_labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let several = series.len() > 1;
    let spread = 0.12 / series.len().max(1) as f64;
    for (k, points) in series.iter().enumerate() {
        let color = series_color(k);
        let dx = (k as f64 - (series.len() as f64 - 1.0) / 2.0) * spread;
        let at = |i: usize| i as f64 + dx;
        let shown = || {
            points
                .iter()
                .enumerate()
                .filter(|(_, (m, _))| m.is_finite())
        };
        if several {
            chart
                .draw_series(LineSeries::new(
                    shown().map(|(i, &(m, _))| (at(i), m)),
                    color.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series(shown().map(|(i, &(m, s))| {
                ErrorBar::new_vertical(at(i), m - s, m, m + s, color.filled(), 10)
            }))
            .map_err(err)?;
        chart
            .draw_series(shown().map(|(i, &(m, _))| Circle::new((at(i), m), 5, color.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// Several series of points with error bars over the same named x positions
/// ([`series_panel`]), the legend in a strip of its own on the right.
pub fn series_error_bars(
    dir: &Path,
    name: &str,
    titles: (&str, &str, &str),
    x_labels: &[String],
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let legend_width = 40
        + 8 * series
            .iter()
            .map(|s| s.0.chars().count())
            .max()
            .unwrap_or(8) as u32;
    let values: Vec<Vec<(f64, f64)>> = series.iter().map(|s| s.1.clone()).collect();
    both!(dir, name, (620 + legend_width, 440), |root| {
        let (plot, legend) = root.split_horizontally(620);
        series_panel(&plot, titles, x_labels, &values, titles.2 == "accuracy")?;
        for (k, (label, _)) in series.iter().enumerate() {
            let y = 70 + 24 * k as i32;
            legend
                .draw(&Rectangle::new(
                    [(8, y - 6), (26, y + 6)],
                    series_color(k).filled(),
                ))
                .map_err(err)?;
            legend
                .draw(&Text::new(
                    label.clone(),
                    (32, y - 7),
                    ("sans-serif", 14).into_font(),
                ))
                .map_err(err)?;
        }
    })
}

/// Axis labels of counts: whole numbers only.
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// Lines of one metric per epoch, one per named run.
pub fn curves(
    dir: &Path,
    name: &str,
    title: &str,
    y_desc: &str,
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    both!(dir, name, (800, 420), |root| {
        let epochs = series.iter().map(|s| s.1.len()).max().unwrap_or(1).max(2);
        let lo = series
            .iter()
            .flat_map(|s| s.1.iter())
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let hi = series
            .iter()
            .flat_map(|s| s.1.iter())
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(1.0..epochs as f64, (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(epochs.min(12))
            .x_label_formatter(&whole)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (i, (label, v)) in series.iter().enumerate() {
            let color = series_color(i);
            chart
                .draw_series(LineSeries::new(
                    v.iter().enumerate().map(|(e, &y)| ((e + 1) as f64, y)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    })
}

/// 2-D points with their class.
pub type Points = Vec<(f64, f64, usize)>;

/// Scatter plots of 2-D points coloured by class, one panel per series (the penultimate-layer
/// picture of Müller et al. 2019).
pub fn projections(
    dir: &Path,
    name: &str,
    class_names: &[String],
    series: &[(String, Points)],
) -> Result<()> {
    // Four panels (training and held-out rows, without and with smoothing) go on two rows.
    let (rows, size) = if series.len() == 4 {
        (2, (900, 820))
    } else {
        (1, (900, 440))
    };
    let mut shown: Vec<usize> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.2))
        .collect();
    shown.sort_unstable();
    shown.dedup();
    both!(dir, name, (size.0, size.1 + 30), |root| {
        // The classes' legend in a strip of its own above the panels, so that it covers no point.
        let (strip, grid) = root.split_vertically(30);
        let mut x = 20;
        for &c in &shown {
            let label = format!("class {}", class_names.get(c).cloned().unwrap_or_default());
            strip
                .draw(&Circle::new((x, 16), 5, series_color(c).filled()))
                .map_err(err)?;
            strip
                .draw(&Text::new(
                    label.clone(),
                    (x + 10, 8),
                    ("sans-serif", 14).into_font(),
                ))
                .map_err(err)?;
            x += 40 + 8 * label.chars().count() as i32;
        }
        let panels = grid.split_evenly((rows, series.len().max(1).div_ceil(rows)));
        for ((label, pts), area) in series.iter().zip(panels.iter()) {
            let (mut x0, mut x1, mut y0, mut y1) = (
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
            );
            for &(x, y, _) in pts {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
            if !x0.is_finite() {
                (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
            }
            let (px, py) = (((x1 - x0) * 0.05).max(1e-3), ((y1 - y0) * 0.05).max(1e-3));
            let mut chart = ChartBuilder::on(area)
                .caption(label.clone(), ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))
                .map_err(err)?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(err)?;
            let mut classes: Vec<usize> = pts.iter().map(|p| p.2).collect();
            classes.sort_unstable();
            classes.dedup();
            for c in classes {
                let color = series_color(c);
                chart
                    .draw_series(
                        pts.iter()
                            .filter(|p| p.2 == c)
                            .map(|&(x, y, _)| Circle::new((x, y), 3, color.mix(0.7).filled())),
                    )
                    .map_err(err)?;
            }
        }
    })
}

/// Grouped bars of several named values (ECE before and after temperature scaling).
pub fn grouped_bars(
    dir: &Path,
    name: &str,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let layout = Bars {
        size: (800, 420),
        title,
        x_desc: "",
        y_desc,
        y_label_area: 60,
        top: None,
    };
    bars(dir, name, &layout, groups, series)
}

/// Size, texts and y range of a grouped bar chart.
struct Bars<'a> {
    size: (u32, u32),
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    y_label_area: u32,
    /// Top of the y axis; `None`: 1.2 × the largest value.
    top: Option<f64>,
}

/// One bar per group and series, the series side by side within each group, with a legend.
fn bars(
    dir: &Path,
    name: &str,
    layout: &Bars,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    both!(dir, name, (layout.size.0, layout.size.1 + 30), |root| {
        let top = layout.top.unwrap_or_else(|| {
            series
                .iter()
                .flat_map(|s| s.1.iter())
                .cloned()
                .fold(0.0, f64::max)
                * 1.2
                + 1e-3
        });
        let n = groups.len();
        // The legend in a strip of its own under the title, so that it covers no bar.
        let root = root.titled(layout.title, ("sans-serif", 20)).map_err(err)?;
        let (strip, plot) = root.split_vertically(30);
        let mut x = layout.y_label_area as i32 + 12;
        for (s, (label, _)) in series.iter().enumerate() {
            strip
                .draw(&Rectangle::new(
                    [(x, 9), (x + 14, 21)],
                    series_color(s).filled(),
                ))
                .map_err(err)?;
            strip
                .draw(&Text::new(
                    label.clone(),
                    (x + 20, 7),
                    ("sans-serif", 14).into_font(),
                ))
                .map_err(err)?;
            x += 50 + 8 * label.chars().count() as i32;
        }
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(layout.y_label_area)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(layout.x_desc)
            .y_desc(layout.y_desc)
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                    groups[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        let w = 0.8 / series.len().max(1) as f64;
        for (s, (_, values)) in series.iter().enumerate() {
            let color = series_color(s);
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    let x0 = g as f64 - 0.4 + s as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, v)], color.filled())
                }))
                .map_err(err)?;
        }
    })
}

/// Confusion matrix as a grid: rows the true classes, columns the predicted ones, each cell
/// shaded by the fraction of its row (the recall on the diagonal) and labelled with its count.
pub fn confusion_matrix(
    dir: &Path,
    name: &str,
    class_names: &[String],
    counts: &[usize],
) -> Result<()> {
    let k = class_names.len();
    let side = (120 + 60 * k as u32).clamp(420, 1100);
    let short = |s: &String| -> String {
        if s.chars().count() > 14 {
            format!("{}…", s.chars().take(13).collect::<String>())
        } else {
            s.clone()
        }
    };
    both!(dir, name, (side + 80, side), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Confusion matrix (rows: true class)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..k as f64, 0.0..k as f64)
            .map_err(err)?;
        let label = |v: &f64| -> String {
            let i = v.floor() as usize;
            if (v - v.floor() - 0.5).abs() < 1e-9 && i < k {
                short(&class_names[i])
            } else {
                String::new()
            }
        };
        // Row 0 at the top, as tables read.
        let y_label = |v: &f64| -> String {
            let flipped = k as f64 - v;
            label(&flipped)
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * k + 1)
            .y_labels(2 * k + 1)
            .x_label_formatter(&label)
            .y_label_formatter(&y_label)
            .x_desc("predicted class")
            .y_desc("true class")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for t in 0..k {
            let row: usize = counts[t * k..(t + 1) * k].iter().sum();
            for p in 0..k {
                let c = counts[t * k + p];
                let share = if row == 0 { 0.0 } else { c as f64 / row as f64 };
                let y0 = (k - 1 - t) as f64;
                let x0 = p as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                        BLUE.mix(0.08 + 0.85 * share).filled(),
                    )))
                    .map_err(err)?;
                let colour = if share > 0.5 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        c.to_string(),
                        (x0 + 0.42, y0 + 0.55),
                        ("sans-serif", 14).into_font().color(&colour),
                    )))
                    .map_err(err)?;
            }
        }
    })
}
