//! Everything the bench programs reported, joined: figures by source, ratios, the Python
//! baseline's status.

use std::collections::HashMap;

use super::programs::{PYTHON, PYTHON_SCRIPT};
use super::protocol::parse_line;
use super::protocol::{FigureDecl, RatioDecl, Record};
use super::stats::Stats;

/// A declared figure with its samples, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub(crate) decl: FigureDecl,
    pub(crate) samples: Vec<f64>,
}

impl Figure {
    pub(crate) fn stats(&self) -> Option<Stats> {
        Stats::of(&self.samples)
    }
}

/// Where a figure comes from, told by the prefix of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A bare id: offspring's own measure.
    Offspring,
    /// `python.<base>`: the Python baseline's measure of the same scenario.
    Python,
    /// `floor.<base>`: what raw sockets between two processes allow for it.
    Floor,
}

impl Source {
    /// Splits an id into its source and its base, the part the three sources share.
    pub(crate) fn split(id: &str) -> (Self, &str) {
        if let Some(base) = id.strip_prefix("python.") {
            (Self::Python, base)
        } else if let Some(base) = id.strip_prefix("floor.") {
            (Self::Floor, base)
        } else {
            (Self::Offspring, id)
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Offspring => "offspring",
            Self::Python => "python",
            Self::Floor => "floor",
        }
    }
}

/// What became of the Python baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum PythonStatus {
    /// It ran and exited 0.
    Ran,
    /// There is no `python3` on `PATH`.
    NotFound,
    /// It could not be started, exited non-zero or overran its limit; the figures it reported before that are kept.
    Failed(String),
    /// It was not started, because `offspring-bench` failed first.
    #[default]
    NotRun,
}

impl PythonStatus {
    /// The status in a few words, for the JSON report and the python column.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Ran => "ok".to_string(),
            Self::NotFound => format!("{PYTHON} not found"),
            Self::Failed(reason) => format!("failed: {reason}"),
            Self::NotRun => "not run".to_string(),
        }
    }

    /// What a python cell says when the baseline has no figure for the row.
    pub(crate) fn missing_cell(&self) -> &'static str {
        match self {
            Self::Ran => "-",
            Self::NotFound => "python3 not found",
            Self::Failed(_) => "python failed",
            Self::NotRun => "not run",
        }
    }

    /// A sentence for the reader when the baseline did not run cleanly.
    pub(crate) fn note(&self) -> Option<String> {
        let consequence = "ratios that need its figures are n/a";
        match self {
            Self::Ran => None,
            Self::NotFound => Some(format!(
                "{PYTHON} not found on PATH: the Python baseline was skipped, and {consequence}"
            )),
            Self::Failed(reason) => Some(format!(
                "the Python baseline ({PYTHON} {PYTHON_SCRIPT}) failed: {reason}; figures it reported are kept, and {consequence}"
            )),
            Self::NotRun => Some(format!(
                "the Python baseline was not run because offspring-bench failed; {consequence}"
            )),
        }
    }
}

/// Everything the bench programs reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// Figures in declaration order.
    pub(crate) figures: Vec<Figure>,
    pub(crate) ratios: Vec<RatioDecl>,
    /// Malformed or inconsistent lines, reported but not fatal, since figures are never asserted.
    pub(crate) warnings: Vec<String>,
    pub(crate) python: PythonStatus,
}

impl Report {
    pub(crate) fn figure(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|figure| figure.decl.id == id)
    }

    /// The value of a ratio, or `None` when either figure is missing or has no samples, or the denominator is zero.
    pub(crate) fn ratio_value(&self, ratio: &RatioDecl) -> Option<f64> {
        let a = self.figure(&ratio.a)?.stats()?.median;
        let b = self.figure(&ratio.b)?.stats()?.median;
        if b == 0.0 { None } else { Some(a / b) }
    }

    /// Groups the figures into one row per base.
    ///
    /// Rows follow offspring's figures in declaration order. A base that offspring does not measure (Python's chunk size 1, say) gets a row of its own, placed after the row of the figure its source declared just before it, so that it lands next to its relatives.
    pub(crate) fn rows(&self) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = Vec::new();
        for source in [Source::Offspring, Source::Floor, Source::Python] {
            let mut after: Option<usize> = None;
            for figure in &self.figures {
                let (from, base) = Source::split(&figure.decl.id);
                if from != source {
                    continue;
                }
                let at = match rows.iter().position(|row| row.base == base) {
                    Some(at) => at,
                    None => {
                        let at = after.map_or(rows.len(), |after| after + 1);
                        rows.insert(at, Row::new(base));
                        at
                    }
                };
                rows[at].set(source, figure);
                after = Some(at);
            }
        }
        rows
    }
}

/// One row of the text report: a base and the figures each source reported for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row<'a> {
    pub(crate) base: &'a str,
    pub(crate) offspring: Option<&'a Figure>,
    pub(crate) python: Option<&'a Figure>,
    pub(crate) floor: Option<&'a Figure>,
}

impl<'a> Row<'a> {
    pub(crate) fn new(base: &'a str) -> Self {
        Self {
            base,
            offspring: None,
            python: None,
            floor: None,
        }
    }

    pub(crate) fn set(&mut self, source: Source, figure: &'a Figure) {
        let slot = match source {
            Source::Offspring => &mut self.offspring,
            Source::Python => &mut self.python,
            Source::Floor => &mut self.floor,
        };
        *slot = Some(figure);
    }

    /// The figure that speaks for the row's unit and direction: offspring's, else Python's, else the floor's.
    pub(crate) fn lead(&self) -> Option<&'a Figure> {
        self.offspring.or(self.python).or(self.floor)
    }
}

/// How many times better offspring's median is than `other`'s: above 1 is better, whichever way the figure is read. For a lower-is-better figure (a time, a size) that is other / offspring; for a higher-is-better one (a rate) offspring / other. `None` when either has no samples or a median of zero.
pub(crate) fn advantage(offspring: &Figure, other: &Figure) -> Option<f64> {
    let ours = offspring.stats()?.median;
    let theirs = other.stats()?.median;
    let (numerator, denominator) = if offspring.decl.lower_is_better {
        (theirs, ours)
    } else {
        (ours, theirs)
    };
    if denominator == 0.0 {
        None
    } else {
        Some(numerator / denominator)
    }
}

/// Accumulates protocol lines into a [`Report`]. Samples may arrive before their figure's declaration, and ratios before the figures they name (or from the other program), so they are joined only at the end.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    decls: Vec<FigureDecl>,
    samples: HashMap<String, Vec<f64>>,
    ratios: Vec<RatioDecl>,
    pub(crate) warnings: Vec<String>,
}

impl Collector {
    /// Takes one stdout line; lines outside the protocol are echoed to stderr so that nothing the bench prints is lost.
    pub(crate) fn accept(&mut self, line: &str) {
        match parse_line(line) {
            Ok(Some(record)) => self.push(record),
            Ok(None) => eprintln!("{line}"),
            Err(err) => self.warnings.push(err),
        }
    }

    pub(crate) fn push(&mut self, record: Record) {
        match record {
            Record::Figure(decl) => {
                if self.decls.iter().any(|known| known.id == decl.id) {
                    self.warnings.push(format!(
                        "figure {:?} declared twice; keeping the first declaration",
                        decl.id
                    ));
                } else {
                    self.decls.push(decl);
                }
            }
            Record::Sample { id, value } => self.samples.entry(id).or_default().push(value),
            Record::Ratio(ratio) => self.ratios.push(ratio),
        }
    }

    /// Joins samples and declarations into the report. A ratio naming a `python.` figure that never came is worth a warning only when the baseline ran cleanly; otherwise the note about the baseline already explains it.
    pub(crate) fn finish(mut self, python: PythonStatus) -> Report {
        let figures: Vec<Figure> = self
            .decls
            .into_iter()
            .map(|decl| {
                let samples = self.samples.remove(&decl.id).unwrap_or_default();
                Figure { decl, samples }
            })
            .collect();
        let mut orphans: Vec<String> = self.samples.into_keys().collect();
        orphans.sort();
        for id in orphans {
            self.warnings
                .push(format!("samples for undeclared figure {id:?} were ignored"));
        }
        let mut undeclared: Vec<&str> = Vec::new();
        for ratio in &self.ratios {
            for id in [ratio.a.as_str(), ratio.b.as_str()] {
                let expected = python == PythonStatus::Ran || Source::split(id).0 != Source::Python;
                if expected
                    && !undeclared.contains(&id)
                    && !figures.iter().any(|figure| figure.decl.id == id)
                {
                    undeclared.push(id);
                }
            }
        }
        for id in undeclared {
            self.warnings
                .push(format!("ratio refers to undeclared figure {id:?}"));
        }
        Report {
            figures,
            ratios: self.ratios,
            warnings: self.warnings,
            python,
        }
    }
}
