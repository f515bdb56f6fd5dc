//! Hand-rolled argument parsing: `--flag VALUE`, `--flag=VALUE`, switches
//! and positionals, with errors that name the flag.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Bad command-line input: reported with exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong.
    pub message: String,
    /// The command whose `--help` to point at (`None` = top level).
    pub command: Option<&'static str>,
}

impl UsageError {
    pub fn new(command: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            command,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One parsed token.
#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    /// `--name` or `-x`, with the value written as `--name=value`, if any.
    Flag(String, Option<String>),
    /// Anything not starting with `-` (or everything after `--`).
    Positional(String),
}

/// The arguments of one command.
pub struct Args {
    command: &'static str,
    items: VecDeque<String>,
    only_positionals: bool,
}

impl Args {
    pub fn new(command: &'static str, items: impl IntoIterator<Item = String>) -> Self {
        Self {
            command,
            items: items.into_iter().collect(),
            only_positionals: false,
        }
    }

    /// An error about this command's arguments.
    pub fn error(&self, message: impl Into<String>) -> UsageError {
        UsageError::new(Some(self.command), message)
    }

    /// The next token, or `None` at the end.
    pub fn next_token(&mut self) -> Option<Token> {
        let item = self.items.pop_front()?;
        if self.only_positionals || item == "-" || !item.starts_with('-') {
            return Some(Token::Positional(item));
        }
        if item == "--" {
            self.only_positionals = true;
            return self.next_token();
        }
        match item.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                Some(Token::Flag(name.to_string(), Some(value.to_string())))
            }
            _ => Some(Token::Flag(item, None)),
        }
    }

    /// The value of `flag`: the inline `=value` or the next argument.
    pub fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, UsageError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.items.pop_front() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => Err(self.error(format!("{flag} needs a value"))),
        }
    }

    /// Rejects a value given to a switch (`--json=yes`).
    pub fn no_value(&self, flag: &str, inline: Option<String>) -> Result<(), UsageError> {
        match inline {
            None => Ok(()),
            Some(_) => Err(self.error(format!("{flag} takes no value"))),
        }
    }

    /// Parses the value of `flag` as a duration (see [`parse_duration`]).
    pub fn duration(&mut self, flag: &str, inline: Option<String>) -> Result<Duration, UsageError> {
        let v = self.value(flag, inline)?;
        parse_duration(&v).map_err(|e| self.error(format!("{flag} {v:?}: {e}")))
    }

    /// Parses the value of `flag` as a number within `min..=max`.
    pub fn number<T>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        min: T,
        max: T,
    ) -> Result<T, UsageError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let v = self.value(flag, inline)?;
        match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(self.error(format!(
                "{flag} {v:?}: expected a number from {min} to {max}"
            ))),
        }
    }

    /// The standard error for a flag this command does not know.
    pub fn unknown(&self, flag: &str) -> UsageError {
        self.error(format!("unknown option {flag}"))
    }
}

/// Parses `250ms`, `1.5s`, `2m`, `100us`: a non-negative number followed by
/// a unit. A bare number is rejected, so that no one has to guess the unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err("expected a number with a unit, e.g. 200ms or 1.5s".into());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err("missing unit: write e.g. 200ms, 1.5s or 2m".into()),
        other => return Err(format!("unknown unit {other:?} (use us, ms, s, m or h)")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 86_400.0 * 365.0 {
        return Err("too large".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::new("test", v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("200").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999h").is_err());
    }

    #[test]
    fn tokens_and_values() {
        let mut a = args(&[
            "--clients",
            "3",
            "--json",
            "--interval=1s",
            "url",
            "--",
            "--x",
        ]);
        let Some(Token::Flag(f, inline)) = a.next_token() else {
            panic!()
        };
        assert_eq!(f, "--clients");
        assert_eq!(a.number::<u32>(&f, inline, 1, 10), Ok(3));
        assert_eq!(a.next_token(), Some(Token::Flag("--json".into(), None)));
        let Some(Token::Flag(f, inline)) = a.next_token() else {
            panic!()
        };
        assert_eq!(a.duration(&f, inline), Ok(Duration::from_secs(1)));
        assert_eq!(a.next_token(), Some(Token::Positional("url".into())));
        assert_eq!(a.next_token(), Some(Token::Positional("--x".into())));
        assert_eq!(a.next_token(), None);
    }

    #[test]
    fn missing_and_out_of_range_values_are_errors() {
        let mut a = args(&["--clients"]);
        assert!(a.value("--clients", None).is_err());
        let mut a = args(&["0"]);
        let e = a.number::<u32>("--clients", None, 1, 10).unwrap_err();
        assert!(e.message.contains("--clients"), "{e}");
        let mut a = args(&["--json"]);
        assert!(a.value("--for", None).is_err(), "a flag is not a value");
    }
}
