//! Results of the scenarios: one table row each, the checks behind the verdict, and measured notes.

use serde_json::{json, Value};

use crate::accounting::Tally;

/// One scenario-specific condition and what was measured for it.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Result of one scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static str,
    pub tally: Tally,
    pub checks: Vec<Check>,
    /// Measured numbers printed under the table.
    pub notes: Vec<String>,
    pub seconds: f64,
    /// Set when the scenario could not run to its end.
    pub error: Option<String>,
}

impl Outcome {
    /// Creates an empty outcome of `scenario`.
    pub fn new(scenario: &'static str) -> Outcome {
        Outcome { scenario, tally: Tally::default(), checks: Vec::new(), notes: Vec::new(), seconds: 0.0, error: None }
    }

    /// Adds a check.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { name: name.to_string(), passed, detail: detail.into() });
    }

    /// Adds a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Reports whether nothing was lost, no duplicate is unexplained, and every check passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.tally.lost == 0 && self.tally.duplicated == 0 && self.checks.iter().all(|check| check.passed)
    }

    /// Returns the outcome as JSON, for `--json`.
    pub fn to_json(&self) -> Value {
        let tally = &self.tally;
        json!({
            "scenario": self.scenario,
            "accepted": tally.accepted,
            "delivered": tally.delivered,
            "failed": tally.failed,
            "lost": tally.lost,
            "duplicated": tally.duplicated,
            "redelivered": tally.redelivered,
            "unacknowledged": tally.unacknowledged,
            "passed": self.passed(),
            "seconds": self.seconds,
            "error": self.error,
            "checks": self.checks.iter().map(|check| json!({"name": check.name, "passed": check.passed, "detail": check.detail})).collect::<Vec<_>>(),
            "notes": self.notes,
            "problems": tally.problems,
        })
    }
}

/// Formats the table of all outcomes, then each scenario's checks, notes and first problems.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut text = String::new();
    text.push_str(&format!(
        "{:<18} {:>8} {:>9} {:>6} {:>5} {:>10} {:>11} {:>6} {:>8}\n",
        "scenario", "accepted", "delivered", "failed", "lost", "duplicated", "redelivered", "result", "seconds"
    ));
    for outcome in outcomes {
        let tally = &outcome.tally;
        text.push_str(&format!(
            "{:<18} {:>8} {:>9} {:>6} {:>5} {:>10} {:>11} {:>6} {:>8.1}\n",
            outcome.scenario,
            tally.accepted,
            tally.delivered,
            tally.failed,
            tally.lost,
            tally.duplicated,
            tally.redelivered,
            if outcome.passed() { "ok" } else { "FAIL" },
            outcome.seconds,
        ));
    }

    for outcome in outcomes {
        text.push_str(&format!("\n{}:\n", outcome.scenario));
        if let Some(error) = &outcome.error {
            text.push_str(&format!("  error: {error}\n"));
        }
        for check in &outcome.checks {
            text.push_str(&format!("  [{}] {}: {}\n", if check.passed { "ok" } else { "FAIL" }, check.name, check.detail));
        }
        for note in &outcome.notes {
            text.push_str(&format!("  {note}\n"));
        }
        let problems = &outcome.tally.problems;
        for problem in problems.iter().take(10) {
            text.push_str(&format!("  problem: {problem}\n"));
        }
        if problems.len() > 10 {
            text.push_str(&format!("  ... and {} more problems\n", problems.len() - 10));
        }
    }
    text
}
