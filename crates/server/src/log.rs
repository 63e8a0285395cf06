//! [`Logger`]: one line per event on stderr, as text (`time LEVEL message key=value …`) or as
//! JSON (`{"time":…,"level":…,"msg":…,key:value…}`), chosen by `--log-format`.
//!
//! Deliberately small: the server logs start-up, reloads, errors and one line per admission
//! decision; it needs no spans or filtering.

use sealgate_core::timestamp::Clock as _;
use sealgate_registry::driver::SystemClock;
use std::io::Write as _;

use serde_json::{Map, Value};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-25T17:49:21.123Z INFO message key=value …` (values with spaces are quoted).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation.
    Info,
    /// Something the operator should look at; the server carries on.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes log lines to stderr. Cheap to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logger {
    format: LogFormat,
}

impl Logger {
    /// A logger writing `format`.
    pub fn new(format: LogFormat) -> Logger {
        Logger { format }
    }

    /// Logs `message` with `fields`.
    pub fn log(&self, level: Level, message: &str, fields: &[(&str, Value)]) {
        let line = self.line(now(), level, message, fields);
        // One write per line, so lines from concurrent tasks do not interleave.
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
    }

    /// [`Level::Info`].
    pub fn info(&self, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Info, message, fields);
    }

    /// [`Level::Warn`].
    pub fn warn(&self, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Warn, message, fields);
    }

    /// [`Level::Error`].
    pub fn error(&self, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Error, message, fields);
    }

    fn line(&self, time: String, level: Level, message: &str, fields: &[(&str, Value)]) -> String {
        match self.format {
            LogFormat::Json => {
                let mut object = Map::new();
                object.insert("time".into(), Value::String(time));
                object.insert("level".into(), Value::String(level.as_str().into()));
                object.insert("msg".into(), Value::String(message.into()));
                for (k, v) in fields {
                    object.insert((*k).to_string(), v.clone());
                }
                format!("{}\n", Value::Object(object))
            }
            LogFormat::Text => {
                let mut line = format!(
                    "{time} {} {}",
                    level.as_str().to_uppercase(),
                    single_line(message)
                );
                for (k, v) in fields {
                    line.push(' ');
                    line.push_str(k);
                    line.push('=');
                    line.push_str(&text_value(v));
                }
                line.push('\n');
                line
            }
        }
    }
}

/// A value as `key=value` text: bare when it has no space, quote or `=`, else JSON-quoted.
fn text_value(v: &Value) -> String {
    match v {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control()) =>
        {
            s.clone()
        }
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

fn single_line(s: &str) -> String {
    s.replace('\n', "\\n")
}

/// Now as RFC 3339 with milliseconds, UTC.
fn now() -> String {
    let since = SystemClock.since_epoch();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let base = sealgate_core::timestamp::format_rfc3339(secs);
    // "…:SSZ" → "…:SS.mmmZ"
    format!(
        "{}.{:03}Z",
        base.trim_end_matches('Z'),
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_lines_quote_values_with_spaces_and_json_lines_parse() {
        let fields = [
            ("uid", json!("705ab4f5")),
            ("allowed", json!(false)),
            (
                "reasons",
                json!("resource Pod/default/x was blocked\n\np:\n  r: no"),
            ),
            ("duration_ms", json!(1.5)),
        ];
        let text = Logger::new(LogFormat::Text).line(
            "2026-11-25T00:00:00.000Z".into(),
            Level::Info,
            "decision",
            &fields,
        );
        assert_eq!(
            text,
            "2026-11-25T00:00:00.000Z INFO decision uid=705ab4f5 allowed=false reasons=\"resource Pod/default/x was blocked\\n\\np:\\n  r: no\" duration_ms=1.5\n"
        );
        assert_eq!(text.lines().count(), 1);

        let line = Logger::new(LogFormat::Json).line(
            "2026-11-25T00:00:00.000Z".into(),
            Level::Warn,
            "decision",
            &fields,
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "decision");
        assert_eq!(v["allowed"], false);
        assert_eq!(v["uid"], "705ab4f5");
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = now();
        assert_eq!(t.len(), "2026-11-25T17:49:21.123Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
