//! `TimelineError`: why a trace could not be turned into a timeline.

use std::error::Error;
use std::fmt;

/// Why [`render_svg`](crate::render_svg) refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineError {
    /// The input is not valid JSON.
    Json {
        /// The line of the first offending character, from 1.
        line: usize,
        /// The column of the first offending character, from 1, counted in characters.
        column: usize,
        /// What was wrong there.
        message: String,
    },
    /// The input is valid JSON but not shaped like a Chrome trace: neither an object with a
    /// `traceEvents` array nor a bare array of events.
    NotATrace(String),
    /// The trace holds no event with a timestamp, so there is nothing to draw.
    NoEvents,
}

impl fmt::Display for TimelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json {
                line,
                column,
                message,
            } => write!(f, "invalid json at line {line}, column {column}: {message}"),
            Self::NotATrace(why) => write!(f, "not a chrome trace: {why}"),
            Self::NoEvents => f.write_str("the trace has no timed events to draw"),
        }
    }
}

impl Error for TimelineError {}
