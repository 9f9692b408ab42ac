//! nginx `log_format` strings, translated into the `LogFormat` directives
//! that read the same fields: `'$remote_addr - $remote_user [$time_local]
//! "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'`
//! is `combined`. A variable with no counterpart is read and ignored.

/// The `LogFormat` string that reads what `spec` (an nginx `log_format`)
/// writes.
pub fn to_log_format(spec: &str) -> Result<String, String> {
    let mut out = String::with_capacity(spec.len() + 16);
    let mut rest = spec;
    while let Some((text, after)) = rest.split_once('$') {
        out += &text.replace('%', "%%");
        let (name, next) = match after.strip_prefix('{') {
            Some(braced) => {
                braced.split_once('}').ok_or_else(|| format!("unclosed ${{ in {spec:?}"))?
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                after.split_at_checked(end).unwrap_or((after, ""))
            }
        };
        if name.is_empty() {
            return Err(format!("a lone $ in {spec:?}: nginx variables are $name or ${{name}}"));
        }
        // `[$time_local]` is Apache's `%t`, brackets included.
        if let Some(closed) = next.strip_prefix(']').filter(|_| name == "time_local")
            && out.ends_with('[')
        {
            out.pop();
            out += "%t";
            rest = closed;
            continue;
        }
        out += &directive(name);
        rest = next;
    }
    out += &rest.replace('%', "%%");
    Ok(out)
}

/// The directive for a source's `client` written as an nginx variable
/// (`$http_x_forwarded_for` is `%{X-Forwarded-For}i`); `None` for other text.
pub fn client(written: &str) -> Option<String> {
    let name = written.strip_prefix('$')?;
    let name = name.strip_prefix('{').and_then(|n| n.strip_suffix('}')).unwrap_or(name);
    Some(directive(name))
}

/// The directive for one nginx variable.
fn directive(name: &str) -> String {
    let header = |h: &str| {
        let capital = |w: &str| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |first| first.to_ascii_uppercase().to_string() + c.as_str())
        };
        let words: Vec<String> = h.split('_').map(capital).collect();
        format!("%{{{}}}i", words.join("-"))
    };
    match name {
        "remote_addr" | "realip_remote_addr" => "%a".into(),
        "remote_user" => "%u".into(),
        "time_local" => "%{%d/%b/%Y:%H:%M:%S %z}t".into(),
        "time_iso8601" => "%{%Y-%m-%dT%H:%M:%S%:z}t".into(),
        "msec" => "%{sec}t.%{msec_frac}t".into(),
        "request" => "%r".into(),
        "status" => "%>s".into(),
        "body_bytes_sent" => "%b".into(),
        "bytes_sent" => "%O".into(),
        "host" => "%{Host}i".into(),
        "server_name" => "%v".into(),
        "server_port" => "%p".into(),
        // Read and ignored, unless a request header.
        other => other.strip_prefix("http_").map_or_else(|| "%l".into(), header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_formats_translate() {
        let combined = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
        assert_eq!(
            to_log_format(combined).unwrap(),
            r#"%a - %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#
        );
        assert_eq!(
            to_log_format(
                "${remote_addr} [$time_iso8601] $msec 100% $request_time $http_x_forwarded_for"
            )
            .unwrap(),
            "%a [%{%Y-%m-%dT%H:%M:%S%:z}t] %{sec}t.%{msec_frac}t 100%% %l %{X-Forwarded-For}i"
        );
        assert_eq!(client("$http_x_forwarded_for").as_deref(), Some("%{X-Forwarded-For}i"));
        assert_eq!(client("${remote_addr}").as_deref(), Some("%a"));
        assert_eq!(client("%h"), None);
        assert!(to_log_format("$remote_addr $").unwrap_err().contains("lone $"));
        assert!(to_log_format("${remote_addr").unwrap_err().contains("unclosed"));
    }
}
