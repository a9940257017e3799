//! The endpoints one registry host is fetched from, in order, from what the two files say
//! (pure: no I/O), and the URL helpers it uses.

use super::*;

/// The registry's own endpoint: `docker.io` is served by `registry-1.docker.io`.
pub(crate) fn default_server(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://registry-1.docker.io".into()
        }
        _ => format!("https://{host}"),
    }
}

/// Whether `host` (`name[:port]`) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    // containerd's list: not `*.localhost`, which DNS may send anywhere.
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || name
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL as it may be printed: without a `user:password@` part.
pub(crate) fn redact(url: &str) -> String {
    split_userinfo(url).0
}

/// Splits `scheme://user:password@rest` into the URL without its user part and the
/// (percent-decoded) user and password, if any.
pub(crate) fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let (user, pass) = rest[..at].split_once(':').unwrap_or((&rest[..at], ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let clean = match scheme {
        Some(s) => format!("{s}://{}", &rest[at + 1..]),
        None => rest[at + 1..].to_string(),
    };
    (clean, Some((decode(user), decode(pass))))
}

/// `scheme://authority/path` → `authority`.
pub(super) fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Adds `https://` when a configured endpoint has no scheme, and the API path: `/v2` is
/// appended unless the path already ends with it or `override_path` says the path is the
/// API root as written.
pub(crate) fn api_base(url: &str, override_path: bool) -> String {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    let (scheme, rest) = trimmed.split_once("://").unwrap_or(("https", trimmed));
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    if override_path || path.ends_with("/v2") {
        format!("{scheme}://{rest}")
    } else {
        format!("{scheme}://{rest}/v2")
    }
}

/// The endpoints for `host`, in the order they are tried (see the module docs).
pub(crate) fn plan_endpoints(
    host: &str,
    k3s: Option<(&Path, &RegistriesYaml)>,
    hosts: Option<&HostsFile>,
) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let configs = k3s.map(|(_, y)| &y.configs);
    let config_for = |authority: &str| configs.and_then(|c| c.get(authority));
    let tls_of = |c: Option<&K3sConfig>| {
        let tls = c.and_then(|c| c.tls.as_ref());
        (
            tls.is_some_and(|t| t.insecure_skip_verify),
            tls.and_then(|t| t.ca_file.clone()).into_iter().collect(),
        )
    };

    if let Some((path, yaml)) = k3s {
        // The wildcard applies only to registries without a mirror entry of their own.
        let (key, mirror) = match yaml.mirrors.get(host) {
            Some(m) => (host, Some(m)),
            None => ("*", yaml.mirrors.get("*")),
        };
        for url in mirror.map(|m| m.endpoint.as_slice()).unwrap_or_default() {
            let (url, in_url) = split_userinfo(url);
            let base = k3s_base(&url);
            let c = config_for(authority_of(&base));
            let (skip_verify, ca) = tls_of(c);
            out.push(Endpoint {
                kind: EndpointKind::Mirror,
                skip_verify,
                ca,
                credentials: k3s_credentials(c).or(in_url.map(basic)),
                headers: vec![],
                origin: format!("{} mirrors.{key:?}", path.display()),
                base,
            });
        }
    }
    if let Some(h) = hosts {
        for e in &h.hosts {
            if !e.capabilities.iter().any(|c| c == "pull") {
                continue;
            }
            let (url, in_url) = split_userinfo(&e.url);
            let base = api_base(&url, e.override_path);
            let c = config_for(authority_of(&base));
            out.push(Endpoint {
                kind: EndpointKind::Mirror,
                skip_verify: e.skip_verify,
                ca: e.ca.clone(),
                credentials: k3s_credentials(c).or(in_url.map(basic)),
                headers: e.headers.clone(),
                origin: format!("{} host {:?}", h.path.display(), url),
                base,
            });
        }
    }
    let server = hosts.and_then(|h| h.server.as_deref()).map(split_userinfo);
    let defaults: Vec<String> = match &server {
        Some((s, _)) => vec![api_base(s, false)],
        None if is_loopback(host) => vec![
            api_base(&format!("https://{host}"), false),
            api_base(&format!("http://{host}"), false),
        ],
        None => vec![api_base(&default_server(host), false)],
    };
    for base in defaults {
        let c = config_for(authority_of(&base)).or_else(|| config_for(host));
        let (mut skip_verify, mut ca) = tls_of(c);
        let mut headers = vec![];
        let origin = match hosts.filter(|h| h.server.is_some()) {
            Some(h) => {
                skip_verify |= h.server_skip_verify;
                ca.extend(h.server_ca.iter().cloned());
                headers = h.server_headers.clone();
                format!("{} server", h.path.display())
            }
            None => "the registry's default endpoint".to_string(),
        };
        out.push(Endpoint {
            kind: EndpointKind::Default,
            skip_verify,
            ca,
            credentials: k3s_credentials(c)
                .or_else(|| server.as_ref().and_then(|(_, u)| u.clone()).map(basic)),
            headers,
            origin,
            base,
        });
    }
    // The same URL configured twice is tried once, where it first appears; a mirror
    // entry naming the registry itself counts as its default endpoint.
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.base.clone()));
    let default_bases: Vec<String> = out
        .iter()
        .filter(|e| e.kind == EndpointKind::Default)
        .map(|e| e.base.clone())
        .collect();
    for e in &mut out {
        if default_bases.contains(&e.base) {
            e.kind = EndpointKind::Default;
        }
    }
    out
}
