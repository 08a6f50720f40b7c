//! The result table: absolute figures per path, ratios to the direct path.

use std::fmt::Write as _;
use std::time::Duration;

/// How a row's values read and compare.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// Seconds; lower is better; ratio and added time to direct.
    Latency,
    /// A rate in this unit per second; higher is better; ratio to direct.
    Rate(&'static str),
    /// Seconds of gateway CPU (no direct figure).
    Cpu,
    /// KiB (no direct figure).
    Kib,
}

/// One line of the table: a value per column, `None` where it does not apply.
pub(crate) struct Row {
    label: String,
    kind: Kind,
    values: Vec<Option<f64>>,
}

/// The whole table.
pub(crate) struct Report {
    columns: Vec<String>,
    lines: Vec<Line>,
    targets: Vec<Target>,
}

enum Line {
    Title(String),
    Row(Row),
}

/// A goal and whether a variant reached it.
pub(crate) struct Target {
    pub(crate) column: String,
    pub(crate) what: &'static str,
    pub(crate) measured: String,
    pub(crate) goal: &'static str,
    pub(crate) met: bool,
}

impl Report {
    /// A table whose first column is the direct path.
    pub(crate) fn new(columns: Vec<String>) -> Self {
        Self {
            columns,
            lines: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Starts a section.
    pub(crate) fn title(&mut self, title: impl Into<String>) {
        self.lines.push(Line::Title(title.into()));
    }

    /// Adds a row; `values` has one entry per column.
    pub(crate) fn row(&mut self, label: impl Into<String>, kind: Kind, values: Vec<Option<f64>>) {
        assert_eq!(values.len(), self.columns.len());
        self.lines.push(Line::Row(Row {
            label: label.into(),
            kind,
            values,
        }));
    }

    /// Adds latency percentiles (p50, p90, p99, max) of each column's samples.
    pub(crate) fn percentiles(&mut self, samples: &mut [Vec<Duration>]) {
        for sample in samples.iter_mut() {
            sample.sort_unstable();
        }
        for (label, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
            let values = samples
                .iter()
                .map(|s| (!s.is_empty()).then(|| percentile(s, p).as_secs_f64()))
                .collect();
            self.row(label, Kind::Latency, values);
        }
    }

    /// Records a target for `column`.
    pub(crate) fn target(&mut self, target: Target) {
        self.targets.push(target);
    }

    /// The table as text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{:<46}{:>13}", "", self.columns[0]);
        for column in &self.columns[1..] {
            let _ = write!(out, " | {column:>12}{:>8}{:>12}", "ratio", "added");
        }
        out.push('\n');
        for line in &self.lines {
            match line {
                Line::Title(title) => {
                    let _ = writeln!(out, "{title}");
                }
                Line::Row(row) => render_row(&mut out, row),
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\ntargets");
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "  {:<6} {:<44} {:>10}  (goal {:<10}) {}",
                    t.column,
                    t.what,
                    t.measured,
                    t.goal,
                    if t.met { "met" } else { "MISSED" }
                );
            }
        }
        out
    }
}

fn render_row(out: &mut String, row: &Row) {
    let direct = row.values[0];
    let _ = write!(
        out,
        "  {:<44}{:>13}",
        row.label,
        direct.map_or("-".into(), |v| format_value(row.kind, v))
    );
    for value in &row.values[1..] {
        let shown = value.map_or("-".into(), |v| format_value(row.kind, v));
        let (ratio, added) = match (row.kind, direct, *value) {
            (Kind::Latency, Some(d), Some(v)) if d > 0.0 => {
                (format!("{:.2}x", v / d), format!("{:+}", Seconds(v - d)))
            }
            (Kind::Rate(_), Some(d), Some(v)) if d > 0.0 => {
                (format!("{:.2}x", v / d), String::new())
            }
            _ => (String::new(), String::new()),
        };
        let _ = write!(out, " | {shown:>12}{ratio:>8}{added:>12}");
    }
    out.push('\n');
}

fn format_value(kind: Kind, value: f64) -> String {
    match kind {
        Kind::Latency | Kind::Cpu => Seconds(value).to_string(),
        Kind::Rate(unit) if value >= 10_000.0 => format!("{:.0}k {unit}", value / 1e3),
        Kind::Rate(unit) => format!("{value:.1} {unit}"),
        Kind::Kib if value >= 10_240.0 => format!("{:.1} MiB", value / 1024.0),
        Kind::Kib => format!("{value:.1} KiB"),
    }
}

/// Seconds shown in µs or ms.
struct Seconds(f64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if f.sign_plus() && self.0 >= 0.0 {
            "+"
        } else {
            ""
        };
        let micros = self.0 * 1e6;
        if micros.abs() < 10.0 {
            write!(f, "{sign}{micros:.2} µs")
        } else if micros.abs() < 1_000.0 {
            write!(f, "{sign}{micros:.1} µs")
        } else {
            write!(f, "{sign}{:.2} ms", micros / 1e3)
        }
    }
}

/// The nearest-rank percentile of sorted samples (`p` = 1.0 is the maximum).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `value` shown as a ratio.
pub(crate) fn ratio(value: f64) -> String {
    format!("{value:.2}x")
}
