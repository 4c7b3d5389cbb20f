//! The results of one benchmark run, kept as data (written to `results.json`) and rendered as
//! Markdown tables.

use serde::Serialize;

use crate::load::LoadSummary;
use crate::machine::Machine;
use crate::targets::{listing_growth, LISTING_GROWTH_LIMIT, LISTING_P99_LIMIT_MS};

/// One load: a server measured under a bounded load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadRow {
    /// Key that targets look the row up by, such as `sync-plugin`.
    pub id: String,
    /// Scenario name as the command line takes it.
    pub scenario: String,
    /// Description of the requests and their target.
    pub label: String,
    pub connections: usize,
    /// Figures, or `None` when the load could not run.
    pub figures: Option<LoadSummary>,
    /// Reason the load was not measured, or a remark on its method.
    pub note: Option<String>,
}

/// One listing variant at one table size.
#[derive(Clone, Debug, Serialize)]
pub struct ListingRow {
    /// `list-new` or `list-all`.
    pub listing: String,
    /// Start of the page, such as `first page` or `page 50`.
    pub variant: String,
    /// Messages of the client stored when the page was read.
    pub rows: u64,
    pub connections: usize,
    pub figures: LoadSummary,
}

/// Resident memory of one process in one state.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    pub id: String,
    pub process: String,
    pub state: String,
    pub megabytes: f64,
}

/// One target and whether the run met it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetRow {
    pub target: String,
    /// Id of the load or memory row judged, or `listing`.
    pub applies_to: String,
    /// The condition as the tables show it beside that row, such as `≥ 0.25× baseline`.
    pub short: String,
    /// The figure compared, with its unit.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured.
    pub passed: Option<bool>,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub machine: Option<Machine>,
    /// The command line of the run.
    pub command: String,
    /// Wall time of the whole run in seconds.
    pub run_seconds: f64,
    pub loads: Vec<LoadRow>,
    pub listings: Vec<ListingRow>,
    pub memory: Vec<MemoryRow>,
    pub targets: Vec<TargetRow>,
}

/// Id of the baseline load at the load's connection count, the reference of all throughput ratios.
pub const BASELINE: &str = "baseline";

/// Id of the baseline load at the listing's connection count, the reference of listing latencies.
pub const BASELINE_LISTING: &str = "baseline-listing";

/// Id of the baseline server's idle memory, the reference of memory ratios.
pub const BASELINE_MEMORY: &str = "baseline-idle";

impl Report {
    /// Figures of the load `id`, if it ran.
    pub fn load(&self, id: &str) -> Option<&LoadSummary> {
        self.loads.iter().find(|row| row.id == id).and_then(|row| row.figures.as_ref())
    }

    /// Figures of a listing variant at a table size.
    pub fn listing(&self, listing: &str, variant: &str, rows: u64) -> Option<&LoadSummary> {
        self.listings.iter().find(|row| row.listing == listing && row.variant == variant && row.rows == rows).map(|row| &row.figures)
    }

    /// Resident megabytes of the memory row `id`.
    pub fn memory_megabytes(&self, id: &str) -> Option<f64> {
        self.memory.iter().find(|row| row.id == id).map(|row| row.megabytes)
    }

    /// Ratio of the load `id`'s requests per second to the baseline's.
    pub fn throughput_ratio(&self, id: &str) -> Option<f64> {
        let baseline = self.load(BASELINE)?.requests_per_second;
        let figures = self.load(id)?;
        (baseline > 0.0).then(|| figures.requests_per_second / baseline)
    }

    /// Figures of the baseline load measured with `connections` connections, if any.
    pub fn baseline_at(&self, connections: usize) -> Option<&LoadSummary> {
        [BASELINE, BASELINE_LISTING]
            .into_iter()
            .filter_map(|id| self.loads.iter().find(|row| row.id == id))
            .find(|row| row.connections == connections)
            .and_then(|row| row.figures.as_ref())
    }

    /// Returns the server CPU per request with its ratio to the baseline's, or nothing unmeasured.
    fn cpu_cell(&self, figures: &LoadSummary) -> String {
        let Some(cpu) = figures.server_cpu_ms_per_request else {
            return String::new();
        };
        let base = self.load(BASELINE).and_then(|base| base.server_cpu_ms_per_request).filter(|base| *base > 0.0);
        match base {
            Some(base) => format!("{cpu:.3} ({})", format_ratio(cpu / base)),
            None => format!("{cpu:.3}"),
        }
    }

    /// Returns the targets judged on row `id`, as `condition: result` joined with `; `.
    fn target_cell(&self, id: &str) -> String {
        let cells: Vec<String> = self
            .targets
            .iter()
            .filter(|target| target.applies_to == id)
            .map(|target| format!("{}: {}", target.short, result_text(target.passed)))
            .collect();
        cells.join("; ")
    }

    /// Renders the tables of loads, listings, memory and targets as Markdown.
    pub fn tables_markdown(&self) -> String {
        let mut text = String::new();
        text.push_str(&self.loads_table());
        if !self.listings.is_empty() {
            text.push('\n');
            text.push_str(&self.listings_table());
        }
        if !self.memory.is_empty() {
            text.push('\n');
            text.push_str(&self.memory_table());
        }
        if !self.targets.is_empty() {
            text.push('\n');
            text.push_str(&self.targets_table());
        }
        text
    }

    fn loads_table(&self) -> String {
        let mut text = String::from(
            "| scenario | load | connections | requests | errors | req/s | × baseline req/s | p50 ms | p99 ms | max ms | server CPU ms/req | target |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let baseline = self.load(BASELINE);
        for row in &self.loads {
            let Some(figures) = &row.figures else {
                let reason = row.note.as_deref().unwrap_or("no figures");
                text.push_str(&format!("| {} | {} | {} | not measured: {reason} | | | | | | | | {} |\n", row.scenario, row.label, row.connections, self.target_cell(&row.id)));
                continue;
            };
            let latency_reference = self.baseline_at(row.connections);
            let ratio = |value: f64, base: Option<f64>| match base {
                Some(base) if base > 0.0 => format!(" ({})", format_ratio(value / base)),
                _ => String::new(),
            };
            let label = match &row.note {
                Some(note) => format!("{} ({note})", row.label),
                None => row.label.clone(),
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {}{} | {}{} | {} | {} | {} |\n",
                row.scenario,
                label,
                row.connections,
                format_count(figures.requests),
                format_count(figures.errors),
                format_count(figures.requests_per_second.round() as u64),
                baseline.map(|base| format_ratio(figures.requests_per_second / base.requests_per_second)).unwrap_or_default(),
                format_millis(figures.p50_ms),
                ratio(figures.p50_ms, latency_reference.map(|base| base.p50_ms)),
                format_millis(figures.p99_ms),
                ratio(figures.p99_ms, latency_reference.map(|base| base.p99_ms)),
                format_millis(figures.max_ms),
                self.cpu_cell(figures),
                self.target_cell(&row.id),
            ));
        }
        text.push_str(
            "\nLatency ratios in brackets are to the baseline's p50 and p99 at the same connection count. Server CPU is the user and \
             system time of the server under test's processes (the gateway alone for sync sends, not the mock behind it) per request, \
             with its ratio to the baseline server's.\n",
        );
        text
    }

    fn listings_table(&self) -> String {
        let mut text = String::from(
            "| listing | stored messages | page | requests | errors | p50 ms | p99 ms | p99 × baseline | p99 × smaller table | server CPU ms/req | target |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let baseline_p99 = self.load(BASELINE_LISTING).map(|base| base.p99_ms);
        let largest = self.listings.iter().map(|row| row.rows).max().unwrap_or(0);
        for row in &self.listings {
            let growth = listing_growth(self, row);
            let target = if row.rows == largest {
                let mut cells = vec![format!("p99 < {LISTING_P99_LIMIT_MS} ms: {}", result_text(Some(row.figures.p99_ms < LISTING_P99_LIMIT_MS)))];
                if let Some(growth) = growth {
                    cells.push(format!("≤ {LISTING_GROWTH_LIMIT}× smaller table: {}", result_text(Some(growth <= LISTING_GROWTH_LIMIT))));
                }
                cells.join("; ")
            } else {
                String::new()
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.listing,
                format_count(row.rows),
                row.variant,
                format_count(row.figures.requests),
                format_count(row.figures.errors),
                format_millis(row.figures.p50_ms),
                format_millis(row.figures.p99_ms),
                baseline_p99.map(|base| format_ratio(row.figures.p99_ms / base)).unwrap_or_default(),
                growth.map(format_ratio).unwrap_or_default(),
                self.cpu_cell(&row.figures),
                target,
            ));
        }
        text
    }

    fn memory_table(&self) -> String {
        let mut text = String::from("| process | state | VmRSS MB | × baseline server idle | target |\n|---|---|---:|---:|---|\n");
        let baseline = self.memory_megabytes(BASELINE_MEMORY);
        for row in &self.memory {
            let ratio = baseline.filter(|base| *base > 0.0).map(|base| format_ratio(row.megabytes / base)).unwrap_or_default();
            text.push_str(&format!("| {} | {} | {:.1} | {ratio} | {} |\n", row.process, row.state, row.megabytes, self.target_cell(&row.id)));
        }
        text
    }

    fn targets_table(&self) -> String {
        let mut text = String::from("| target | measured | result |\n|---|---|---|\n");
        for row in &self.targets {
            text.push_str(&format!("| {} | {} | {} |\n", row.target, row.measured, result_text(row.passed)));
        }
        text
    }
}

/// Formats a target result: pass, **fail** (bold), or not measured.
fn result_text(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "pass",
        Some(false) => "**fail**",
        None => "not measured",
    }
}

/// Formats a count with thousands separators: `12,345`.
pub fn format_count(value: u64) -> String {
    let digits = value.to_string();
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// Formats milliseconds with three significant digits.
pub fn format_millis(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Formats a ratio such as `0.31×` or `12×`.
pub fn format_ratio(value: f64) -> String {
    if !value.is_finite() {
        return "–".to_string();
    }
    if value >= 10.0 {
        format!("{value:.0}×")
    } else if value >= 0.1 {
        format!("{value:.2}×")
    } else {
        format!("{value:.3}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_gets_separators() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1234567), "1,234,567");
    }

    #[test]
    fn ratio_formats() {
        assert_eq!(format_ratio(0.3149), "0.31×");
        assert_eq!(format_ratio(12.4), "12×");
        assert_eq!(format_ratio(0.0136), "0.014×");
        assert_eq!(format_ratio(f64::INFINITY), "–");
    }
}
