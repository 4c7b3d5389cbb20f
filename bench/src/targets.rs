//! The performance targets, checked against the figures of one run.

use crate::report::{format_count, format_millis, format_ratio, ListingRow, Report, TargetRow, BASELINE};

/// Highest listing p99 at the larger table, in milliseconds.
pub const LISTING_P99_LIMIT_MS: f64 = 5.0;

/// Highest growth of a listing variant's p99 from the smaller table to the larger one.
pub const LISTING_GROWTH_LIMIT: f64 = 1.5;

/// Builds a target row. `applies_to` is the id of the load or memory row it judges, `short` the
/// condition as the tables show it beside that row.
fn row(target: &str, applies_to: &str, short: &str, measured: Option<(String, bool)>) -> TargetRow {
    let (measured, passed) = match measured {
        Some((measured, passed)) => (measured, Some(passed)),
        None => ("–".to_string(), None),
    };
    TargetRow { target: target.to_string(), applies_to: applies_to.to_string(), short: short.to_string(), measured, passed }
}

/// Checks "load `id` reaches `share` of load `reference`'s requests per second".
fn throughput_share(report: &Report, id: &str, reference: &str, share: f64) -> Option<(String, bool)> {
    let figures = report.load(id)?;
    let base = report.load(reference)?;
    if base.requests_per_second <= 0.0 {
        return None;
    }
    let ratio = figures.requests_per_second / base.requests_per_second;
    let text = format!(
        "{} ({} of {} req/s)",
        format_ratio(ratio),
        format_count(figures.requests_per_second.round() as u64),
        format_count(base.requests_per_second.round() as u64)
    );
    Some((text, ratio >= share))
}

/// Returns the growth of `row`'s p99 from the same listing variant at the smaller table, or
/// `None` for a row of the smaller table.
pub fn listing_growth(report: &Report, row: &ListingRow) -> Option<f64> {
    let smallest = report.listings.iter().map(|row| row.rows).min()?;
    if row.rows == smallest {
        return None;
    }
    let small = report.listing(&row.listing, &row.variant, smallest)?;
    Some(row.figures.p99_ms / small.p99_ms)
}

/// Checks the listing targets at the largest table: the worst p99, and the worst growth of a
/// variant's p99 from the smallest table.
fn listing_targets(report: &Report) -> [TargetRow; 2] {
    let smallest = report.listings.iter().map(|row| row.rows).min();
    let largest = report.listings.iter().map(|row| row.rows).max();
    let size = largest.map(format_count).unwrap_or_else(|| "1,000,000".to_string());
    let small_size = smallest.map(format_count).unwrap_or_else(|| "10,000".to_string());
    let latency_target = format!("listing p99 < {LISTING_P99_LIMIT_MS} ms at {size} messages (every page variant)");
    let growth_target = format!("listing p99 at {size} ≤ {LISTING_GROWTH_LIMIT}× its figure at {small_size} messages");
    let at_largest: Vec<&ListingRow> = report.listings.iter().filter(|row| Some(row.rows) == largest).collect();

    let worst = at_largest.iter().max_by(|a, b| a.figures.p99_ms.total_cmp(&b.figures.p99_ms));
    let latency = worst.map(|worst| {
        let text = format!("worst {} ms ({} {})", format_millis(worst.figures.p99_ms), worst.listing, worst.variant);
        (text, worst.figures.p99_ms < LISTING_P99_LIMIT_MS)
    });

    let growths = at_largest.iter().filter_map(|row| Some((row, listing_growth(report, row)?)));
    let worst_growth = growths.max_by(|a, b| a.1.total_cmp(&b.1));
    let growth = worst_growth.map(|(row, ratio)| {
        let text = format!("worst {} ({} {})", format_ratio(ratio), row.listing, row.variant);
        (text, ratio <= LISTING_GROWTH_LIMIT)
    });
    [row(&latency_target, "listing", "", latency), row(&growth_target, "listing", "", growth)]
}

/// Returns every target with its measured figure and result.
pub fn evaluate(report: &Report) -> Vec<TargetRow> {
    let half_rate_p99 = report.load("intake-half-rate").map(|figures| (format!("{} ms", format_millis(figures.p99_ms)), figures.p99_ms < 10.0));
    let e2e_rate = report.load("e2e").map(|figures| {
        let rate = figures.requests_per_second;
        (format!("{} messages/s", format_count(rate.round() as u64)), rate >= 5000.0)
    });
    let megabytes = |id: &str, limit: f64| report.memory_megabytes(id).map(|megabytes| (format!("{megabytes:.1} MB"), megabytes < limit));

    let mut rows = vec![
        row("intake ≥ 25% of baseline req/s", "intake", "≥ 0.25× baseline", throughput_share(report, "intake", BASELINE, 0.25)),
        row("intake p99 < 10 ms at half the intake rate", "intake-half-rate", "p99 < 10 ms", half_rate_p99),
        row("e2e ≥ 5,000 messages/s", "e2e", "≥ 5,000/s", e2e_rate),
        row("sync through the plugin ≥ 50% of direct-to-mock req/s", "sync-plugin", "≥ 0.50× direct", throughput_share(report, "sync-plugin", "sync-direct", 0.5)),
        row("sync cache hit ≥ 40% of baseline req/s", "sync-cache-hit", "≥ 0.40× baseline", throughput_share(report, "sync-cache-hit", BASELINE, 0.4)),
    ];
    rows.extend(listing_targets(report));
    rows.push(row("gateway RSS idle < 40 MB", "gateway-idle", "< 40 MB", megabytes("gateway-idle", 40.0)));
    rows.push(row("gateway RSS peak during e2e < 200 MB", "gateway-e2e-peak", "< 200 MB", megabytes("gateway-e2e-peak", 200.0)));
    rows.push(row("sync through the plugin ≥ 5× Node-RED req/s", "sync-plugin", "≥ 5× Node-RED", throughput_share(report, "sync-plugin", "node-red", 5.0)));
    rows.push(row("sync through the plugin ≥ 50% of nginx req/s", "sync-plugin", "≥ 0.50× nginx", throughput_share(report, "sync-plugin", "nginx", 0.5)));
    rows
}
