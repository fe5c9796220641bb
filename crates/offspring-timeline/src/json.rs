//! A small, strict JSON parser (RFC 8259) producing a [`Value`] tree.
//!
//! Strict means: no comments, no trailing commas, no leading zeros, no `NaN` or `Infinity`, no
//! raw control characters inside strings, and nothing but whitespace after the value. Two
//! leniencies keep real files readable: a leading byte-order mark is skipped, and a `\u`
//! escape naming a lone surrogate (which a Rust `String` cannot hold) becomes U+FFFD.
//!
//! The parser recurses once per nested array or object, so nesting is capped at
//! [`MAX_DEPTH`]: a hostile file cannot exhaust the stack.

/// The deepest nesting of arrays and objects accepted. Trace files nest four or five levels.
pub(crate) const MAX_DEPTH: usize = 128;

/// A parsed JSON value. Object members keep their order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object (the last one when the key repeats), `None` for anything else.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Self::Object(members) => Some(members),
            _ => None,
        }
    }
}

/// Where and why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// Byte offset of the offending character in the input.
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl JsonError {
    /// The 1-based line and column (in characters) of the error in `text`.
    pub(crate) fn line_column(&self, text: &str) -> (usize, usize) {
        let mut offset = self.offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// Parses `text` as exactly one JSON value.
pub(crate) fn parse(text: &str) -> Result<Value, JsonError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let skipped = text.len() - body.len();
    let mut parser = Parser {
        text: body,
        bytes: body.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.document().map_err(|mut e| {
        e.offset += skipped;
        e
    })?;
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn document(&mut self) -> Result<Value, JsonError> {
        self.skip_whitespace();
        let value = self.value()?;
        self.skip_whitespace();
        if self.pos < self.bytes.len() {
            return Err(self.error("unexpected characters after the json value"));
        }
        Ok(value)
    }

    fn error(&self, message: impl Into<String>) -> JsonError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> JsonError {
        JsonError {
            offset,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` or fails with `expected`.
    fn expect(&mut self, byte: u8, expected: &str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// An error naming what was expected and what was found instead.
    fn unexpected(&self, expected: &str) -> JsonError {
        match self.text[self.pos..].chars().next() {
            None => self.error(format!("expected {expected}, found the end of the input")),
            Some(c) => self.error(format!("expected {expected}, found `{}`", c.escape_debug())),
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            _ => Err(self.unexpected("a json value")),
        }
    }

    /// Runs `parse` one level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<Value, JsonError>,
    ) -> Result<Value, JsonError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error(format!(
                "arrays and objects nested deeper than {MAX_DEPTH} levels"
            )));
        }
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a json value"))
        }
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.pos += 1; // `{`
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("a string key"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':', "`:`")?;
            self.skip_whitespace();
            let value = self.value()?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.pos += 1; // `[`
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1; // `"`
        let mut out = String::new();
        loop {
            // Copy the run of plain characters at once. Every byte that ends a run is ASCII, so
            // the run is whole UTF-8 characters.
            let run = self.bytes[self.pos..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(self.bytes.len() - self.pos);
            out.push_str(&self.text[self.pos..self.pos + run]);
            self.pos += run;
            match self.peek() {
                None => return Err(self.error_at(open, "string is never closed")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => {
                    return Err(self.error("control character in a string (it must be escaped)"));
                }
            }
        }
    }

    /// Decodes the escape at the cursor (a backslash) into `out`.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let start = self.pos;
        self.pos += 1; // `\`
        let Some(kind) = self.peek() else {
            return Err(self.error_at(start, "string is never closed"));
        };
        self.pos += 1;
        let c = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape(start)?,
            _ => {
                let shown = self.text[start..].chars().take(2).collect::<String>();
                return Err(
                    self.error_at(start, format!("invalid escape `{}`", shown.escape_debug()))
                );
            }
        };
        out.push(c);
        Ok(())
    }

    /// Decodes the rest of a `\uXXXX` escape that began at `start`, pairing surrogates.
    fn unicode_escape(&mut self, start: usize) -> Result<char, JsonError> {
        let unit = self.hex4(start)?;
        if !(0xD800..0xDC00).contains(&unit) {
            // A BMP character, or a low surrogate with no high one before it.
            return Ok(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        // A high surrogate counts only with a low one right after it; otherwise it is replaced
        // and whatever follows is read on its own.
        if self.text[self.pos..].starts_with("\\u") {
            let second = self.pos;
            self.pos += 2;
            let low = self.hex4(second)?;
            if (0xDC00..0xE000).contains(&low) {
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.pos = second;
        }
        Ok(char::REPLACEMENT_CHARACTER)
    }

    /// Reads the four hex digits of a `\u` escape that began at `start`.
    fn hex4(&mut self, start: usize) -> Result<u32, JsonError> {
        let digits = self.bytes.get(self.pos..self.pos + 4);
        let value = digits.and_then(|digits| {
            digits.iter().try_fold(0u32, |acc, &b| {
                char::from(b).to_digit(16).map(|d| acc * 16 + d)
            })
        });
        match value {
            Some(value) => {
                self.pos += 4;
                Ok(value)
            }
            None => Err(self.error_at(start, "invalid \\u escape (it needs four hex digits)")),
        }
    }

    fn number(&mut self) -> Result<f64, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error_at(start, "numbers cannot have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        let literal = &self.text[start..self.pos];
        match literal.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(self.error_at(start, format!("number `{literal}` is out of range"))),
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), JsonError> {
        if let Some(b'0'..=b'9') = self.peek() {
            self.digits();
            Ok(())
        } else {
            Err(self.unexpected("a digit"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Value {
        match parse(text) {
            Ok(value) => value,
            Err(e) => panic!("{text:?} should parse, got {e:?}"),
        }
    }

    fn err(text: &str) -> JsonError {
        match parse(text) {
            Ok(value) => panic!("{text:?} should not parse, got {value:?}"),
            Err(e) => e,
        }
    }

    fn string(s: &str) -> Value {
        Value::String(s.to_string())
    }

    #[test]
    fn scalars() {
        assert_eq!(ok("null"), Value::Null);
        assert_eq!(ok(" true "), Value::Bool(true));
        assert_eq!(ok("false"), Value::Bool(false));
        assert_eq!(ok("0"), Value::Number(0.0));
        assert_eq!(ok("-0"), Value::Number(-0.0));
        assert_eq!(ok("12"), Value::Number(12.0));
        assert_eq!(ok("-3.25"), Value::Number(-3.25));
        assert_eq!(ok("1.5e3"), Value::Number(1500.0));
        assert_eq!(ok("1E-2"), Value::Number(0.01));
        assert_eq!(ok("2e+2"), Value::Number(200.0));
        assert_eq!(ok("\"\""), string(""));
    }

    #[test]
    fn containers_keep_order_and_nesting() {
        let value = ok(r#" {"a": [1, {"b": null}], "c": "d", "a": 2} "#);
        assert_eq!(
            value,
            Value::Object(vec![
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::Number(1.0),
                        Value::Object(vec![("b".into(), Value::Null)])
                    ])
                ),
                ("c".into(), string("d")),
                ("a".into(), Value::Number(2.0)),
            ])
        );
        // A repeated key reads as its last value.
        assert_eq!(value.get("a"), Some(&Value::Number(2.0)));
        assert_eq!(ok("[]"), Value::Array(Vec::new()));
        assert_eq!(ok("{ }"), Value::Object(Vec::new()));
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            ok(r#""q\" b\\ s\/ \b\f\n\r\t""#),
            string("q\" b\\ s/ \u{8}\u{c}\n\r\t")
        );
        assert_eq!(ok(r#""caf\u00e9 \u00E9""#), string("café é"));
        assert_eq!(ok(r#""\ud83d\ude00""#), string("😀"));
        assert_eq!(ok("\"déjà vu 😀\""), string("déjà vu 😀"));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(ok(r#""a\ud83db""#), string("a\u{fffd}b"));
        assert_eq!(ok(r#""\ude00""#), string("\u{fffd}"));
        // A high surrogate followed by an escape that is not a low surrogate keeps that escape.
        assert_eq!(ok(r#""\ud83d\u0041""#), string("\u{fffd}A"));
        assert_eq!(ok(r#""\ud83d\n""#), string("\u{fffd}\n"));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(ok("\u{feff}[1]"), Value::Array(vec![Value::Number(1.0)]));
    }

    #[test]
    fn bad_escapes() {
        assert!(err(r#""\x""#).message.contains("invalid escape"));
        assert!(err(r#""\u12G4""#).message.contains("\\u escape"));
        assert!(err(r#""\u12""#).message.contains("\\u escape"));
        assert!(err(r#""\ud83d\uZZZZ""#).message.contains("\\u escape"));
        assert!(err("\"\\").message.contains("never closed"));
    }

    #[test]
    fn bad_strings() {
        assert!(err("\"abc").message.contains("never closed"));
        assert!(err("\"a\u{1}b\"").message.contains("control character"));
        assert!(err("\"a\nb\"").message.contains("control character"));
        assert!(err("'a'").message.contains("expected a json value"));
    }

    #[test]
    fn bad_numbers() {
        for text in [
            "01", "-01", "1.", ".5", "+1", "-", "1e", "1e+", "- 1", "0x10",
        ] {
            err(text);
        }
        assert!(err("1e999").message.contains("out of range"));
        assert!(err("NaN").message.contains("expected a json value"));
        assert!(err("Infinity").message.contains("expected a json value"));
    }

    #[test]
    fn bad_structure() {
        assert!(err("").message.contains("end of the input"));
        assert!(err("   ").message.contains("end of the input"));
        assert!(err("[1,]").message.contains("expected a json value"));
        assert!(err("[1 2]").message.contains("`,` or `]`"));
        assert!(err(r#"{"a":1,}"#).message.contains("string key"));
        assert!(err(r#"{"a" 1}"#).message.contains("`:`"));
        assert!(err("{1:2}").message.contains("string key"));
        assert!(err("[").message.contains("end of the input"));
        assert!(err(r#"{"a":1"#).message.contains("`,` or `}`"));
        assert!(err("tru").message.contains("expected a json value"));
        assert!(err("nul").message.contains("expected a json value"));
        assert!(
            err("[1] // comment")
                .message
                .contains("after the json value")
        );
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let e = err("{\"a\": 1} x");
        assert_eq!(e.offset, 9);
        assert!(e.message.contains("after the json value"));
        err("[1][2]");
        err("1 2");
        assert_eq!(ok("[1] \n\t "), Value::Array(vec![Value::Number(1.0)]));
    }

    #[test]
    fn nesting_is_capped() {
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        ok(&at_limit);
        let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(err(&too_deep).message.contains("nested deeper"));
        // Far deeper input fails just as cleanly, without exhausting the stack.
        let hostile = "[{\"a\":".repeat(100_000);
        assert!(err(&hostile).message.contains("nested deeper"));
    }

    #[test]
    fn error_positions_are_lines_and_columns() {
        let text = "{\n  \"é\": [1,\n  ]\n}";
        let e = err(text);
        assert_eq!(e.line_column(text), (3, 3));
        let text = "\u{feff}[x]";
        let e = err(text);
        assert_eq!(e.line_column(text), (1, 3));
    }
}
