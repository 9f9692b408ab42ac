//! Templates: text with `{name}` placeholders, filled in one pass — text
//! substituted for a placeholder is never read again, so a `{id}` inside a
//! request stays text. One engine serves alert messages and webhook bodies:
//!
//! - [`Mode::Text`] (messages): `{{` and `}}` are literal braces, any other
//!   brace must open or close a placeholder, and every value has control
//!   characters and invalid UTF-8 escaped ([`sanitize`]), so a request can
//!   never forge a second line or another client's alert downstream.
//! - [`Mode::Json`] (webhook bodies): only `{name}` is a placeholder, other
//!   braces are JSON's own; values are JSON-escaped (strings without their
//!   quotes, numbers as digits).

use std::borrow::Cow;

/// How a template is read and its values escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain text; `{{`/`}}` escape braces; values sanitized.
    Text,
    /// A JSON document; values JSON-escaped.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Index into the names the template was parsed with.
    Var(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    mode: Mode,
    pieces: Vec<Piece>,
}

/// A value for a placeholder.
pub enum Value<'a> {
    /// Text.
    Str(Cow<'a, str>),
    /// Raw bytes from a log line.
    Bytes(&'a [u8]),
    /// A number.
    Num(u64),
}

impl Template {
    /// Parses `s`; `names` are the placeholders allowed (a placeholder is
    /// rendered by its index in `names`).
    pub fn parse(s: &str, names: &[&str], mode: Mode) -> Result<Template, String> {
        let unknown =
            |name: &str| format!("unknown placeholder {{{name}}}: use {}", names.join(", "));
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if mode == Mode::Text && (c == '{' || c == '}') && chars.peek() == Some(&c) {
                chars.next();
                text.push(c);
                continue;
            }
            match c {
                '}' if mode == Mode::Text => {
                    return Err("has a lone '}': write '}}' for a literal brace".into());
                }
                '{' => {
                    let mut after = chars.clone();
                    let mut name = String::new();
                    // `-` and `:` for `{header:X-Api-Key}`.
                    let in_name = |n: &char| n.is_ascii_alphanumeric() || "_-:".contains(*n);
                    while let Some(n) = after.next_if(in_name) {
                        name.push(n);
                    }
                    if name.is_empty() || after.next() != Some('}') {
                        if mode == Mode::Json {
                            text.push(c);
                            continue;
                        }
                        let shown: String = chars.clone().take_while(|c| *c != '}').collect();
                        return Err(if chars.any(|c| c == '}') {
                            unknown(&shown)
                        } else {
                            format!("has an unclosed {{{shown}")
                        });
                    }
                    let var =
                        names.iter().position(|n| *n == name).ok_or_else(|| unknown(&name))?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(var));
                    chars = after;
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { mode, pieces })
    }

    /// Fills the placeholders in one pass; `value(i)` gives the value of
    /// the placeholder named `names[i]`.
    pub fn render<'a>(&self, mut value: impl FnMut(usize) -> Value<'a>) -> String {
        // Room for the text and a short value per placeholder: one
        // allocation for most messages (rendered per alert).
        let room = self.pieces.iter().map(|p| if let Piece::Text(s) = p { s.len() } else { 24 });
        let mut out = String::with_capacity(room.sum());
        for p in &self.pieces {
            match p {
                Piece::Text(s) => out.push_str(s),
                Piece::Var(i) => self.push_value(&mut out, value(*i)),
            }
        }
        out
    }

    fn push_value(&self, out: &mut String, v: Value<'_>) {
        match (self.mode, v) {
            (_, Value::Num(n)) => out.push_str(itoa::Buffer::new().format(n)),
            (Mode::Text, Value::Str(s)) => sanitize_into(out, s.as_bytes()),
            (Mode::Text, Value::Bytes(b)) => sanitize_into(out, b),
            // JSON escapes control characters itself.
            (Mode::Json, Value::Str(s)) => push_json(out, &s),
            (Mode::Json, Value::Bytes(b)) => push_json(out, &sanitize(b)),
        }
    }
}

/// Appends `s` JSON-escaped, without its quotes.
fn push_json(out: &mut String, s: &str) {
    if !json_escapes(s) {
        return out.push_str(s);
    }
    let quoted = serde_json::to_string(s).unwrap_or_default();
    let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
    out.push_str(inner.unwrap_or(&quoted));
}

/// Whether JSON escapes anything in `s` (a control character, a quote or a
/// backslash). One pass without early exit, so it vectorizes: the usual
/// answer is no.
pub fn json_escapes(s: &str) -> bool {
    s.bytes().fold(false, |any, c| any | (c < 0x20) | (c == b'"') | (c == b'\\'))
}

/// Escapes bytes for a one-line message: control characters, DEL and invalid
/// UTF-8 become `\xNN`; printable text (also non-ASCII) stays.
pub fn sanitize(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    sanitize_into(&mut out, b);
    out
}

/// [`sanitize`], appending to `out`.
pub fn sanitize_into(out: &mut String, b: &[u8]) {
    // Printable ASCII, the usual case, is copied as it is.
    if b.iter().all(|&c| (0x20..0x7f).contains(&c))
        && let Ok(s) = std::str::from_utf8(b)
    {
        return out.push_str(s);
    }
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buf = [0; 4];
                c.encode_utf8(&mut buf).bytes().for_each(|byte| push_hex(out, byte));
            } else {
                out.push(c);
            }
        }
        chunk.invalid().iter().for_each(|&byte| push_hex(out, byte));
    }
}

/// Appends `\xNN`.
fn push_hex(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 15)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["client", "count", "request"];

    fn text(s: &str) -> Result<Template, String> {
        Template::parse(s, &NAMES, Mode::Text)
    }

    #[test]
    fn text_templates() {
        assert!(text("IP {client} {count}").is_ok());
        assert!(text("{{literal}}").is_ok());
        assert!(text("{nope}").unwrap_err().contains("placeholder {nope}"));
        assert!(text("{client").is_err());
        assert!(text("a } b").is_err());
        let t = text("{{{client}}} x{count}").unwrap();
        let out = t.render(|i| match i {
            0 => Value::Str("1.2.3.4".into()),
            _ => Value::Num(7),
        });
        assert_eq!(out, "{1.2.3.4} x7");
    }

    #[test]
    fn substitution_is_one_pass_and_values_are_escaped() {
        let t = text("{request} by {client}").unwrap();
        let out = t.render(|i| match i {
            2 => Value::Bytes(b"GET /{client}\r\n"),
            _ => Value::Str("1.2.3.4".into()),
        });
        assert_eq!(out, "GET /{client}\\x0d\\x0a by 1.2.3.4");
        let j =
            Template::parse(r#"{"text": "{request}", "n": {count}}"#, &NAMES, Mode::Json).unwrap();
        let out = j.render(|i| match i {
            1 => Value::Num(3),
            _ => Value::Str("say \"hi\" {count}\n".into()),
        });
        assert_eq!(out, r#"{"text": "say \"hi\" {count}\n", "n": 3}"#);
        let out =
            j.render(|i| if i == 1 { Value::Num(4) } else { Value::Str("é \\ plain".into()) });
        assert_eq!(out, r#"{"text": "é \\ plain", "n": 4}"#);
        let out = j.render(|i| if i == 1 { Value::Num(5) } else { Value::Str("plain é".into()) });
        assert_eq!(out, r#"{"text": "plain é", "n": 5}"#);
        assert!(
            Template::parse(r#"{"a": "{nope}"}"#, &NAMES, Mode::Json)
                .unwrap_err()
                .contains("{nope}")
        );
    }

    #[test]
    fn sanitize_escapes_control_and_invalid_bytes() {
        assert_eq!(sanitize(b"GET /\r\n<13>x\x00\x1b[31m"), "GET /\\x0d\\x0a<13>x\\x00\\x1b[31m");
        assert_eq!(sanitize("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(sanitize(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(sanitize("\u{85}".as_bytes()), "\\xc2\\x85");
    }
}
