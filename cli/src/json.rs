//! A minimal JSON value for `--json` output (no dependency needed for
//! writing a few objects).

use std::fmt::{self, Write};

/// A JSON value; objects keep their keys in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// An object from key/value pairs.
    pub fn obj<const N: usize>(pairs: [(&'static str, Json); N]) -> Self {
        Self::Obj(pairs.into())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// Milliseconds with microsecond precision, or null.
    pub fn ms(d: Option<std::time::Duration>) -> Self {
        match d {
            Some(d) => Self::Num((d.as_secs_f64() * 1e6).round() / 1e3),
            None => Self::Null,
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(n) => write!(f, "{n}"),
            Self::Num(x) if x.is_finite() => write!(f, "{x}"),
            Self::Num(_) => f.write_str("null"),
            Self::Str(s) => write_str(f, s),
            Self::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Self::Obj(pairs) => {
                f.write_char('{')?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let v = Json::obj([
            ("name", Json::str("a \"quoted\"\nline")),
            ("n", Json::Int(-3)),
            ("x", Json::Num(1.5)),
            ("nan", Json::Num(f64::NAN)),
            ("ok", Json::Bool(true)),
            ("list", Json::Arr(vec![Json::Null, Json::str("\u{1}")])),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{"name":"a \"quoted\"\nline","n":-3,"x":1.5,"nan":null,"ok":true,"list":[null,"\u0001"]}"#
        );
    }
}
