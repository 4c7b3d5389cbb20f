//! The SVG bar chart of every load's requests per second as a multiple of the baseline's.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::{format_ratio, Report};

/// Height of one bar's row in pixels.
const ROW_HEIGHT: u32 = 34;

/// Width of the image and of the label column, in pixels.
const WIDTH: u32 = 1100;
const LABEL_WIDTH: u32 = 430;

fn scenario_color(scenario: &str) -> RGBColor {
    match scenario {
        "baseline" => RGBColor(140, 140, 140),
        "intake" => RGBColor(52, 101, 164),
        "e2e" => RGBColor(78, 154, 6),
        "sync" => RGBColor(206, 92, 0),
        _ => RGBColor(117, 80, 123),
    }
}

/// Returns the chart label of load `id`; loads without one are left out of the chart.
///
/// The fixed-rate intake load is left out because its rate is set by the harness.
fn chart_label(id: &str) -> Option<&'static str> {
    let label = match id {
        "baseline" => "baseline: bare hyper server",
        "baseline-listing" => "baseline: bare hyper server",
        "intake" => "intake: signed async send",
        "sync-direct" => "sync: lookup straight to uig-mock",
        "sync-plugin" => "sync: through the plugin, cache miss",
        "sync-cache-hit" => "sync: through the plugin, cache hit",
        "e2e-intake" => "e2e: signed async send with callback",
        "e2e" => "e2e: first send to last callback",
        "nginx" => "peers: nginx to uig-mock",
        "node-red" => "peers: Node-RED to uig-mock",
        _ => return None,
    };
    Some(label)
}

/// Draws the chart into `path`; loads without figures are left out.
pub fn write_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let bars: Vec<(String, f64, RGBColor)> = report
        .loads
        .iter()
        .filter_map(|row| {
            let ratio = report.throughput_ratio(&row.id)?;
            let label = format!("{} ({} conn.)", chart_label(&row.id)?, row.connections);
            Some((label, ratio, scenario_color(&row.scenario)))
        })
        .collect();
    if bars.is_empty() {
        return Err(anyhow!("no load has figures to plot"));
    }
    let count = bars.len();
    // A log scale keeps ratios of 0.01 and 1 readable on one chart. The axis starts at a whole
    // decade and leaves room right of the longest bar for its value.
    let smallest = bars.iter().map(|(_, ratio, _)| *ratio).filter(|ratio| *ratio > 0.0).fold(1.0_f64, f64::min);
    let x_min = 10f64.powf((smallest / 2.0).log10().floor());
    let x_max = bars.iter().map(|(_, ratio, _)| *ratio).fold(1.0_f64, f64::max) * 1.6;
    let height = 120 + ROW_HEIGHT * count as u32;

    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| anyhow!("{error}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Requests per second as a multiple of the bare hyper baseline (same run)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(LABEL_WIDTH)
        .build_cartesian_2d((x_min..x_max).log_scale(), (0..count).into_segmented())
        .map_err(|error| anyhow!("{error}"))?;

    // Segment 0 is at the bottom, so the first load gets the top segment.
    let labels: Vec<String> = bars.iter().rev().map(|(label, _, _)| label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(count)
        .y_label_formatter(&|value| match value {
            SegmentValue::CenterOf(index) => labels.get(*index).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|value| format_ratio(*value))
        .x_desc("× baseline req/s (log scale)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|error| anyhow!("{error}"))?;

    let bar_elements = bars.iter().enumerate().map(|(position, (_, ratio, color))| {
        let segment = count - 1 - position;
        let mut bar = Rectangle::new([(x_min, SegmentValue::Exact(segment)), (ratio.max(x_min), SegmentValue::Exact(segment + 1))], color.filled());
        bar.set_margin(5, 5, 0, 0);
        bar
    });
    chart.draw_series(bar_elements).map_err(|error| anyhow!("{error}"))?;

    let value_labels = bars.iter().enumerate().map(|(position, (_, ratio, _))| {
        let segment = count - 1 - position;
        Text::new(format!(" {}", format_ratio(*ratio)), (ratio.max(x_min), SegmentValue::CenterOf(segment)), ("sans-serif", 13).into_font())
    });
    chart.draw_series(value_labels).map_err(|error| anyhow!("{error}"))?;

    let baseline_line = PathElement::new(vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(count))], BLACK.stroke_width(1));
    chart.draw_series(std::iter::once(baseline_line)).map_err(|error| anyhow!("{error}"))?;

    root.present().map_err(|error| anyhow!("{error}"))?;
    Ok(())
}
