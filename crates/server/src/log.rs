//! Logging through `tracing`: the server (and the crates below it) emit events with the
//! `tracing` macros; [`install`] sets, once per process, a `tracing-subscriber` stack that writes
//! one line per event on stderr, as text (`time LEVEL message key=value …`) or as JSON
//! (`{"time":…,"level":…,"msg":…,key:value…}`), chosen by `--log-format`.
//!
//! Every field of the spans an event happens in is written on its line, outermost span first,
//! then the event's own fields: a review runs inside one `review` span (uid, webhook, operation,
//! kind, namespace, then decision and duration recorded once at its end), so every line logged
//! while deciding it names the request.
//!
//! The line layout is sealgate's own (the keys `time`, `level`, `msg` that users read and parse
//! stay as they were); spans, filtering, writers and the dispatch are `tracing-subscriber`'s.

use std::fmt;

use sealgate_core::timestamp::Clock as _;
use sealgate_registry::driver::SystemClock;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-25T17:49:21.123Z INFO message key=value …` (values with spaces are quoted).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why [`install`] did not install the logger.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another subscriber was installed first.
    #[error(
        "a logger is already installed in this process; sealgate_server::log::install is called once, at start"
    )]
    AlreadyInstalled,
}

/// Installs the process-wide subscriber: `format` lines of every event at info level and above
/// on stderr. Called once, by `sealgate serve`, before the server starts.
pub fn install(format: LogFormat) -> Result<(), LogError> {
    tracing::subscriber::set_global_default(subscriber(format, std::io::stderr))
        .map_err(|_| LogError::AlreadyInstalled)
}

/// The subscriber [`install`] installs, writing to `writer` (tests pass a buffer and use it
/// with `tracing::subscriber::with_default`).
pub fn subscriber<W>(format: LogFormat, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The level filter first, for the whole stack: spans and events below info (hyper's, h2's)
    // are then never even created.
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(SpanFieldsLayer)
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(NoSpanText)
                .event_format(Lines { format })
                .with_writer(writer),
        )
}

/// The fields of one span, as values, kept in the span's extensions by [`SpanFieldsLayer`].
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

/// Keeps each span's fields (given at creation and recorded later) as values for [`Lines`].
#[derive(Debug)]
struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = FieldValues::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = FieldValues::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(known) => known.0.extend(fields.fields),
            None => extensions.insert(SpanFields(fields.fields)),
        }
    }
}

/// The fmt layer's own text of span fields: none, [`SpanFieldsLayer`] keeps them as values.
#[derive(Debug)]
struct NoSpanText;

impl<'writer> FormatFields<'writer> for NoSpanText {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'writer>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// Field values of an event or span; `message` is the event's message.
#[derive(Debug, Default)]
struct FieldValues {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl FieldValues {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for FieldValues {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::String(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and the message arrive here; their Debug is their Display.
        self.push(field, Value::String(format!("{value:?}")));
    }
}

/// Writes an event and the fields of its spans as one line of `format`.
#[derive(Debug)]
struct Lines {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut own = FieldValues::default();
        event.record(&mut own);
        let mut fields = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(known) = span.extensions().get::<SpanFields>() {
                    fields.extend(known.0.iter().cloned());
                }
            }
        }
        fields.extend(own.fields);
        let message = own.message.unwrap_or_default();
        let level = *event.metadata().level();
        writer.write_str(&line(self.format, &now(), level, &message, &fields))
    }
}

fn level_str(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// One line, newline included.
fn line(
    format: LogFormat,
    time: &str,
    level: Level,
    message: &str,
    fields: &[(&str, Value)],
) -> String {
    match format {
        LogFormat::Json => {
            let mut object = Map::new();
            object.insert("time".into(), Value::String(time.into()));
            object.insert("level".into(), Value::String(level_str(level).into()));
            object.insert("msg".into(), Value::String(message.into()));
            for (k, v) in fields {
                object.insert((*k).to_string(), v.clone());
            }
            format!("{}\n", Value::Object(object))
        }
        LogFormat::Text => {
            let mut line = format!(
                "{time} {} {}",
                level_str(level).to_uppercase(),
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
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written by a subscriber, for tests.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn logged(format: LogFormat, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing::subscriber::with_default(subscriber(format, move || writer.clone()), emit);
        captured.text()
    }

    fn decision() {
        tracing::info!(
            uid = "705ab4f5",
            allowed = false,
            reasons = "resource Pod/default/x was blocked\n\np:\n  r: no",
            duration_ms = 1.5,
            "decision"
        );
    }

    #[test]
    fn text_lines_quote_values_with_spaces_and_json_lines_parse() {
        let text = logged(LogFormat::Text, decision);
        let (time, rest) = text.split_once(' ').unwrap();
        assert_eq!(time.len(), "2026-11-25T17:49:21.123Z".len(), "{text}");
        assert!(time.ends_with('Z'), "{text}");
        assert_eq!(
            rest,
            "INFO decision uid=705ab4f5 allowed=false reasons=\"resource Pod/default/x was blocked\\n\\np:\\n  r: no\" duration_ms=1.5\n"
        );
        assert_eq!(text.lines().count(), 1);

        let line = logged(LogFormat::Json, || {
            tracing::warn!(uid = "705ab4f5", allowed = false, "decision");
        });
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "decision");
        assert_eq!(v["allowed"], false);
        assert_eq!(v["uid"], "705ab4f5");
    }

    #[test]
    fn lines_carry_the_fields_of_their_spans_recorded_once_at_the_end() {
        let line = logged(LogFormat::Json, || {
            let span = tracing::info_span!(
                "review",
                uid = "705ab4f5",
                kind = "Pod",
                decision = tracing::field::Empty
            );
            let _inside = span.enter();
            tracing::error!(error = "overran", "decision overran the budget");
            span.record("decision", "denied");
            tracing::info!(checks = 3_u64, "decision");
        });
        let lines: Vec<Value> = line
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{line}");
        assert_eq!(lines[0]["uid"], "705ab4f5");
        assert_eq!(lines[0]["kind"], "Pod");
        assert_eq!(lines[0]["error"], "overran");
        assert!(lines[0].get("decision").is_none(), "{line}");
        assert_eq!(lines[1]["uid"], "705ab4f5");
        assert_eq!(lines[1]["decision"], "denied");
        assert_eq!(lines[1]["checks"], 3);
    }

    #[test]
    fn debug_events_are_not_written() {
        let text = logged(LogFormat::Text, || tracing::debug!("detail"));
        assert_eq!(text, "");
    }
}
