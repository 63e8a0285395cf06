//! Output formats of `apply` and `test`: aligned text tables, JSON, and YAML written from the
//! same JSON values (so the two never disagree).

use std::io::Write as _;

use serde_json::Value;

/// Writes `text` to standard output and flushes it. A reader that closed the pipe early
/// (`sealgate apply … | head`) makes this fail with [`std::io::ErrorKind::BrokenPipe`], which
/// `main` turns into a quiet exit 0, as ripgrep does; `println!` would panic instead.
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Whether `err` comes from writing to a standard output whose reader has gone.
pub(crate) fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `print!` through [`write_stdout`]: evaluates to `std::io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::render::write_stdout(&format!($($arg)*))
    };
}

/// `println!` through [`write_stdout`]: evaluates to `std::io::Result<()>`.
macro_rules! outln {
    () => {
        $crate::render::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::render::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Writes `value` as block-style YAML.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (k, v) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar_string(k));
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_map(out, m, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, indent);
            }
            _ => {
                out.push(' ');
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => {
                let mut inner = String::new();
                write_map(&mut inner, m, indent + 2);
                out.push_str(&inner[indent + 2..]);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, indent + 2);
            }
            _ => {
                out.push_str(&scalar(item));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a YAML scalar: plain when unambiguous, else double-quoted JSON (valid YAML).
fn scalar_string(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`~".contains(c) || c.is_ascii_digit())
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        );
    if plain {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

/// Lays out rows as a table with a header, columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < header.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_round_trips_through_the_policy_loader_parser() {
        let v = json!({
            "resources": [{"resource": "Pod/default/test", "allowed": false, "patch": [], "results": [{"policy": "p", "status": "fail", "message": "image a: b; c"}]}],
            "summary": {"pass": 1, "fail": 0},
            "empty": {},
            "text": "yes",
            "multi": "line1\nline2",
        });
        let yaml = to_yaml(&v);
        let docs = sealgate_core::policy::yaml::parse_documents(&yaml);
        let back = docs.into_iter().next().unwrap().unwrap().value;
        assert_eq!(back, v, "{yaml}");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "LONGER", "C"],
            &[vec!["xx".into(), "y".into(), "last column".into()]],
        );
        assert_eq!(t, "A   LONGER  C\nxx  y       last column\n");
    }
}
