//! Registry authentication: parsing `WWW-Authenticate` challenges (RFC 7235) and
//! building the token request of Docker's Bearer flow.

use std::collections::BTreeMap;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased: `bearer`, `basic`.
    pub(crate) scheme: String,
    /// Parameter names lower-cased; values unquoted.
    pub(crate) params: BTreeMap<String, String>,
}

/// Parses every challenge of a header value. Malformed input gives what could be read,
/// never a panic.
pub(crate) fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_sep = |b: u8| b == b' ' || b == b'\t' || b == b',';
    loop {
        while i < s.len() && is_sep(s[i]) {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let start = i;
        while i < s.len() && !is_sep(s[i]) && s[i] != b'=' {
            i += 1;
        }
        let token = &header[start..i];
        // Look past spaces for '=': `realm = "x"` is a parameter too.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1; // the closing quote, if any
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let vs = i;
                while i < s.len() && s[i] != b',' && s[i] != b' ' && s[i] != b'\t' {
                    i += 1;
                }
                header[vs..i].to_string()
            };
            if let Some(c) = out.last_mut()
                && !token.is_empty()
            {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
        } else if !token.is_empty() {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// The token request URL for a Bearer challenge: `realm?service=…&scope=…`, the scope
/// being pull access to `repository` whatever the challenge asks.
pub(crate) fn token_url(challenge: &Challenge, repository: &str) -> Option<reqwest::Url> {
    let realm = challenge.params.get("realm")?;
    let mut url = reqwest::Url::parse(realm).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(service) = challenge.params.get("service") {
            q.append_pair("service", service);
        }
        // Always pull access to the one repository: never the challenge's own scope,
        // which could ask for push rights with the node's credentials.
        q.append_pair("scope", &format!("repository:{repository}:pull"));
    }
    Some(url)
}

/// The token in a token endpoint's JSON answer (`token`, or OAuth2's `access_token`).
pub(crate) fn token_from_response(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.token
        .filter(|t| !t.is_empty())
        .or(a.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn challenges() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
                vec![ch(
                    "bearer",
                    &[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/nginx:pull"),
                    ],
                )],
            ),
            (
                r#"Basic realm="Registry Realm""#,
                vec![ch("basic", &[("realm", "Registry Realm")])],
            ),
            (
                r#"Basic realm="a, b", Bearer realm="https://t/x",service=reg , error="insufficient_scope""#,
                vec![
                    ch("basic", &[("realm", "a, b")]),
                    ch(
                        "bearer",
                        &[
                            ("realm", "https://t/x"),
                            ("service", "reg"),
                            ("error", "insufficient_scope"),
                        ],
                    ),
                ],
            ),
            (
                r#"bearer Realm = "q\"uote\\d" ,SERVICE="s""#,
                vec![ch("bearer", &[("realm", r#"q"uote\d"#), ("service", "s")])],
            ),
            ("Bearer", vec![ch("bearer", &[])]),
            ("", vec![]),
            // Malformed: unterminated quote, stray '=', parameters before any scheme.
            (
                r#"realm="x" Bearer realm="unterminated"#,
                vec![ch("bearer", &[("realm", "unterminated")])],
            ),
            ("Bearer =x,,", vec![]),
            ("Bearer ,=x,,", vec![ch("bearer", &[])]),
        ];
        for (header, want) in cases {
            assert_eq!(parse_www_authenticate(header), want, "{header}");
        }
    }

    #[test]
    fn token_urls() {
        let c = ch(
            "bearer",
            &[
                ("realm", "https://auth.example/token"),
                ("service", "reg.example"),
            ],
        );
        assert_eq!(
            token_url(&c, "team/app").unwrap().as_str(),
            "https://auth.example/token?service=reg.example&scope=repository%3Ateam%2Fapp%3Apull"
        );
        let c = ch(
            "bearer",
            &[
                ("realm", "http://127.0.0.1:9/t?x=1"),
                ("scope", "repository:a:pull,push repository:b:pull"),
            ],
        );
        assert_eq!(
            token_url(&c, "team/app").unwrap().as_str(),
            "http://127.0.0.1:9/t?x=1&scope=repository%3Ateam%2Fapp%3Apull"
        );
        assert!(token_url(&ch("bearer", &[]), "a").is_none());
        assert!(token_url(&ch("bearer", &[("realm", "file:///etc/passwd")]), "a").is_none());
        assert!(token_url(&ch("bearer", &[("realm", "not a url")]), "a").is_none());
    }

    #[test]
    fn token_answers() {
        assert_eq!(
            token_from_response(br#"{"token":"t1"}"#).as_deref(),
            Some("t1")
        );
        assert_eq!(
            token_from_response(br#"{"token":"","access_token":"t2"}"#).as_deref(),
            Some("t2")
        );
        assert_eq!(token_from_response(b"{}"), None);
        assert_eq!(token_from_response(b"nope"), None);
    }
}
