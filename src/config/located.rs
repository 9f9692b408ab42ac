//! What serde says about a wrong value, in our words and with its key:
//! `invalid type: string "ten", expected i64` becomes
//! `rule[1].threshold: must be a whole number (got "ten")`.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The key path (`rule[2].threshold`, `source.format`) of the innermost
/// key or value holding byte `at` of `text`; empty when none does (or the
/// text is not valid TOML).
pub(super) fn key_at(text: &str, at: usize) -> String {
    let Ok(doc) = DeTable::parse(text) else { return String::new() };
    let mut best = String::new();
    in_table(doc.get_ref(), "", at, &mut best);
    best
}

fn in_table(t: &DeTable<'_>, prefix: &str, at: usize, best: &mut String) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        if k.span().contains(&at) || v.span().contains(&at) {
            *best = path.clone();
        }
        in_value(v, &path, at, best);
    }
}

fn in_value(v: &Spanned<DeValue<'_>>, path: &str, at: usize, best: &mut String) {
    match v.get_ref() {
        DeValue::Table(t) => in_table(t, path, at, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if let DeValue::Table(t) = item.get_ref() {
                    in_table(t, &format!("{path}[{}]", i + 1), at, best);
                }
            }
        }
        _ => {}
    }
}

/// serde's message about `key` in our words: what the key takes and what
/// it got.
pub(super) fn in_our_words(message: &str, key: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (got, want) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let got = got.replace("string ", "the text ").replace('`', "");
        if want == "a sequence" && (last == "rule" || last == "output") {
            return format!("write [[{last}]] (each {last} is its own table), not [{last}]");
        }
        let want = match want {
            "i64" | "u64" | "an integer" => "a whole number",
            "a boolean" => "true or false",
            "a string" => "text in quotes",
            "a sequence" => "a list, such as [\"a\", \"b\"]",
            w if w.starts_with("struct ") || w == "a map" => "a table",
            w => w,
        };
        return format!("must be {want} (got {got})");
    }
    if message.starts_with("data did not match any variant of untagged enum RawDuration") {
        return "must be a duration: seconds (600) or text such as \"30s\", \"10m\" or \"1h30m\""
            .into();
    }
    if message.starts_with("data did not match any variant of untagged enum RawRedis") {
        return "must be a Redis URL in quotes (\"redis://host:6379/0\"), or a list of them (a Redis Cluster's seed nodes)".into();
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, allowed) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        let field = field.trim_end_matches('`');
        let allowed = allowed.replace("one of ", "").replace('`', "");
        return format!("{field:?} is not a known key here; use {allowed}");
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_position() {
        let text =
            "[source]\nformat = \"x\"\n[[rule]]\nthreshold = 1\n[[rule]]\nthreshold = \"ten\"\n";
        let at = text.find("\"ten\"").unwrap();
        assert_eq!(key_at(text, at), "rule[2].threshold");
        assert_eq!(key_at(text, text.find("\"x\"").unwrap()), "source.format");
        assert_eq!(key_at("not toml ===", 3), "");
    }

    #[test]
    fn messages_say_what_the_key_takes() {
        let m = in_our_words("invalid type: string \"ten\", expected i64", "rule[1].threshold");
        assert_eq!(m, "must be a whole number (got the text \"ten\")");
        let m = in_our_words("invalid type: map, expected a sequence", "rule");
        assert_eq!(m, "write [[rule]] (each rule is its own table), not [rule]");
        let m = in_our_words(
            "data did not match any variant of untagged enum RawDuration",
            "rule[1].window",
        );
        assert!(m.starts_with("must be a duration"), "{m}");
    }
}
