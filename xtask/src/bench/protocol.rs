//! The line protocol both bench programs speak on stdout (see the module docs of `bench`).

/// A figure declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FigureDecl {
    pub(crate) id: String,
    pub(crate) unit: String,
    pub(crate) lower_is_better: bool,
    pub(crate) description: String,
}

/// The comparison a ratio is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    AtMost,
    AtLeast,
}

impl Op {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "<=" => Some(Self::AtMost),
            ">=" => Some(Self::AtLeast),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AtMost => "<=",
            Self::AtLeast => ">=",
        }
    }

    pub(crate) fn holds(self, value: f64, target: f64) -> bool {
        match self {
            Self::AtMost => value <= target,
            Self::AtLeast => value >= target,
        }
    }
}

/// A ratio declaration: median(a)/median(b) compared against a target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RatioDecl {
    pub(crate) a: String,
    pub(crate) b: String,
    pub(crate) op: Op,
    pub(crate) target: f64,
    pub(crate) description: String,
}

/// One protocol line of the bench program's stdout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Figure(FigureDecl),
    Sample { id: String, value: f64 },
    Ratio(RatioDecl),
}

/// Parses one stdout line. `Ok(None)` is a line outside the protocol; `Err` is a protocol line that is malformed.
pub(crate) fn parse_line(line: &str) -> Result<Option<Record>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let Some((tag, rest)) = line.split_once('\t') else {
        return Ok(None);
    };
    // The description is the last field and is split off whole, so a stray tab inside it does not make the line malformed.
    match tag {
        "figure" => {
            let [id, unit, lower, description] = fields::<4>(rest, line)?;
            let lower_is_better = match lower {
                "0" => false,
                "1" => true,
                other => {
                    return Err(format!(
                        "lower_is_better must be 0 or 1, not {other:?} in {line:?}"
                    ));
                }
            };
            Ok(Some(Record::Figure(FigureDecl {
                id: non_empty_id(id, line)?,
                unit: unit.to_string(),
                lower_is_better,
                description: description.to_string(),
            })))
        }
        "sample" => {
            let [id, value] = fields::<2>(rest, line)?;
            Ok(Some(Record::Sample {
                id: non_empty_id(id, line)?,
                value: parse_number(value, line)?,
            }))
        }
        "ratio" => {
            let [a, b, op, target, description] = fields::<5>(rest, line)?;
            let op = Op::parse(op)
                .ok_or_else(|| format!("ratio op must be <= or >=, not {op:?} in {line:?}"))?;
            Ok(Some(Record::Ratio(RatioDecl {
                a: non_empty_id(a, line)?,
                b: non_empty_id(b, line)?,
                op,
                target: parse_number(target, line)?,
                description: description.to_string(),
            })))
        }
        _ => Ok(None),
    }
}

/// Splits the fields after the tag into exactly `N`, the last one taking the rest of the line.
pub(crate) fn fields<'a, const N: usize>(
    rest: &'a str,
    line: &str,
) -> Result<[&'a str; N], String> {
    let parts: Vec<&str> = rest.splitn(N, '\t').collect();
    <[&str; N]>::try_from(parts).map_err(|parts| {
        format!(
            "expected {} tab-separated fields, found {} in {line:?}",
            N + 1,
            parts.len() + 1
        )
    })
}

pub(crate) fn non_empty_id(id: &str, line: &str) -> Result<String, String> {
    if id.is_empty() {
        Err(format!("empty figure id in {line:?}"))
    } else {
        Ok(id.to_string())
    }
}

/// Parses a finite number; infinities and NaN are rejected because they have no meaningful median and no JSON form.
pub(crate) fn parse_number(text: &str, line: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("not a finite number: {text:?} in {line:?}")),
    }
}
