//! `dlisten serve --config FILE`: a TOML file with a key per serve flag, the
//! flag's name without the dashes, and `eal` for the EAL arguments:
//!
//! ```toml
//! addr = ["198.18.0.1"]
//! listen = ["198.18.0.1:80"]
//! workers = 4
//! fastopen = 0x603
//! eal = ["-l", "2-5", "-a", "0000:03:00.0", "--file-prefix", "dlisten"]
//! ```
//!
//! Each value goes through its flag's own parser, so the file and the
//! command line accept exactly the same values and a new flag is a new key
//! with nothing to add here. A repeatable flag takes an array (or one
//! value), any other flag one value. Unknown keys, bad values and TOML
//! syntax errors name the file, the line and the key.

use clap::{Arg, ArgAction, Command};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The id of the EAL arguments (what follows `--`), and their key.
pub(super) const EAL_ID: &str = "eal";
/// Flags a file may not hold: which file to read, and whether to start.
pub(super) const NOT_IN_FILE: &[&str] = &["config", "check"];

/// Why a `--config` file does not make flags.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    #[error("--config {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {message}", .path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("{}:{line}: unknown key `{key}` (the keys are the `dlisten serve` flags without the dashes, and `eal`)", .path.display())]
    UnknownKey { path: PathBuf, line: usize, key: String },
    #[error("{}:{line}: `{key}` is a command-line flag only", .path.display())]
    CommandLineOnly { path: PathBuf, line: usize, key: String },
    #[error("{}:{line}: {key}: {message}", .path.display())]
    BadValue { path: PathBuf, line: usize, key: String, message: String },
}

/// One key of the file: the flag it sets and its values as the command
/// line would spell them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FileFlag {
    /// clap's id of the flag (the field name, `rx_desc`).
    pub id: String,
    /// The flag's long name, the file's key (`rx-desc`).
    pub long: String,
    pub values: Vec<String>,
}

/// Read `path` and check every key and value against `cmd`, the serve flags.
pub(super) fn read(path: &Path, cmd: &Command) -> Result<Vec<FileFlag>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.into(), source })?;
    parse(&text, path, cmd)
}

/// [`read`] on text already read; `path` names it in errors.
pub(super) fn parse(text: &str, path: &Path, cmd: &Command) -> Result<Vec<FileFlag>, ConfigFileError> {
    let line = |span: std::ops::Range<usize>| line_of(text, span.start);
    let table = DeTable::parse(text).map_err(|e| ConfigFileError::Syntax {
        path: path.into(),
        line: e.span().map_or(1, line),
        message: syntax_message(text, &e),
    })?;
    // The table is sorted by key; report the first problem in file order.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut flags = Vec::new();
    for (key, value) in entries {
        let name: &str = key.get_ref();
        let key_line = line(key.span());
        let unknown = || ConfigFileError::UnknownKey { path: path.into(), line: key_line, key: name.to_string() };
        if NOT_IN_FILE.contains(&name) {
            return Err(ConfigFileError::CommandLineOnly { path: path.into(), line: key_line, key: name.to_string() });
        }
        let arg = if name == EAL_ID {
            cmd.get_arguments().find(|a| a.get_id() == EAL_ID)
        } else {
            cmd.get_arguments().find(|a| a.get_long() == Some(name))
        };
        let Some(arg) = arg else { return Err(unknown()) };
        let bad = |span: std::ops::Range<usize>, message: String| ConfigFileError::BadValue {
            path: path.into(),
            line: line(span),
            key: name.to_string(),
            message,
        };
        let values: Vec<&Spanned<DeValue>> = match value.get_ref() {
            DeValue::Array(items) if takes_many(arg) => items.iter().collect(),
            DeValue::Array(_) => return Err(bad(value.span(), "takes one value, not an array".into())),
            _ if name == EAL_ID => return Err(bad(value.span(), "takes an array of strings, e.g. [\"-l\", \"2-5\"]".into())),
            _ => vec![value],
        };
        let mut strings = Vec::with_capacity(values.len());
        for v in values {
            let s = scalar(v.get_ref()).map_err(|m| bad(v.span(), m))?;
            if name != EAL_ID {
                check(cmd, arg, &s).map_err(|m| bad(v.span(), m))?;
            }
            strings.push(s);
        }
        flags.push(FileFlag { id: arg.get_id().to_string(), long: name.to_string(), values: strings });
    }
    Ok(flags)
}

/// `--long=value`: one token, so a value starting with `-` stays a value.
pub(super) fn flag_token(long: &str, value: &OsStr) -> OsString {
    let mut t = OsString::from(format!("--{long}="));
    t.push(value);
    t
}

/// clap's message without its `error: ` prefix and usage lines.
pub(super) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // Missing required arguments are listed on the indented lines after.
    for arg in lines.take_while(|l| l.starts_with("  ")) {
        line.push(' ');
        line.push_str(arg.trim());
    }
    line
}

/// A repeatable flag (`--listen`), a list (`--cores 2,3`) or the EAL arguments.
fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append) || arg.get_id() == EAL_ID
}

/// A TOML value as the command line would write it.
fn scalar(v: &DeValue) -> Result<String, String> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        // TOML writes 0x602 and 1_000; the flags read decimal.
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .map_err(|e| format!("{i}: {e}")),
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(d) => Ok(d.to_string()),
        DeValue::Array(_) => Err("an array inside an array".into()),
        DeValue::Table(_) => Err("a table, not a value".into()),
    }
}

/// Run `value` through `arg`'s own parser, as if it were on the command line.
fn check(cmd: &Command, arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default();
    cmd.clone()
        .try_get_matches_from([OsString::from("serve"), flag_token(long, OsStr::new(value))])
        .map(drop)
        .map_err(|e| clap_message(&e))
}

/// toml's message, with the text it points at when that is short (which
/// key is the duplicate, which number is bad).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().and_then(|s| text.get(s)).map(str::trim).unwrap_or_default();
    if at.is_empty() || at.len() > 40 || at.contains('\n') {
        e.message().to_string()
    } else {
        format!("{}: `{at}`", e.message())
    }
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}
