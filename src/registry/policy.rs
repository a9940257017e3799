//! What may go where: the decisions `--fetch-missing` makes before each request, kept
//! pure so that every rule has a table of cases.
//!
//! - The endpoint's credentials, bearer token and configured headers go only to the
//!   endpoint's own origin (scheme, host and port).
//! - A token realm gets the endpoint's credentials only when it is on the endpoint's
//!   origin; a realm on another host gets that host's own `registries.yaml` `configs`
//!   credentials, or none. A realm must be HTTPS, unless the endpoint itself is plain
//!   HTTP on loopback.
//! - Redirects never go from HTTPS to plain HTTP; a hop that leaves the endpoint's origin
//!   is a bare GET, and so is every hop after it.

use reqwest::Url;

use super::config::is_loopback;

/// How many redirects one request may follow.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// `host[:port]` as written in `registries.yaml` `configs` keys: the port only when the
/// URL names one.
pub(crate) fn authority(url: &Url) -> String {
    // IPv6 hosts come bracketed: `[::1]`.
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Same scheme, host and port (default ports filled in).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whose credentials a token request to a realm carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RealmCredentials {
    /// The endpoint's: the realm is on the endpoint's own origin (or is the well-known
    /// token service of the endpoint, see [`KNOWN_REALMS`]).
    Endpoint,
    /// The realm host's own `configs` entry.
    OwnConfig,
    /// None: an anonymous token request.
    Anonymous,
}

/// Token services that are part of a registry although on another host: the endpoint's
/// credentials go there too. Both are HTTPS and fixed here, never taken from a server.
pub(crate) const KNOWN_REALMS: &[(&str, &str)] = &[("registry-1.docker.io", "auth.docker.io")];

/// May crimg ask `realm` for a token on behalf of `endpoint`, and with which credentials?
/// `realm_configured`: the realm's host has its own `configs` entry.
pub(crate) fn realm_credentials(
    endpoint: &Url,
    realm: &Url,
    realm_configured: bool,
) -> Result<RealmCredentials, String> {
    let plain_local = endpoint.scheme() == "http" && is_loopback(&authority(endpoint));
    match realm.scheme() {
        "https" => {}
        "http" if plain_local => {}
        "http" => {
            return Err(format!(
                "names a plain-HTTP token realm {}; crimg asks only HTTPS realms (plain HTTP \
                 only for a plain-HTTP registry on loopback)",
                super::config::redact(realm.as_str())
            ));
        }
        other => return Err(format!("names a token realm with scheme {other:?}")),
    }
    let known = KNOWN_REALMS.iter().any(|(e, r)| {
        endpoint.scheme() == "https"
            && realm.scheme() == "https"
            && endpoint.host_str() == Some(e)
            && realm.host_str() == Some(r)
            && realm.port().is_none()
    });
    Ok(if same_origin(endpoint, realm) || known {
        RealmCredentials::Endpoint
    } else if realm_configured {
        RealmCredentials::OwnConfig
    } else {
        RealmCredentials::Anonymous
    })
}

/// What a request to the next hop carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// Credentials, token and configured headers: the hop is on the endpoint's origin and
    /// no earlier hop left it.
    Endpoint,
    /// A bare GET: no credentials, no configured headers, no `Referer`.
    Bare,
}

/// May a redirect from `from` to `to` be followed, for a request to `endpoint`?
/// `left`: an earlier hop already left the endpoint's origin. `hops`: redirects followed
/// so far.
pub(crate) fn redirect(
    endpoint: &Url,
    from: &Url,
    to: &Url,
    left: bool,
    hops: usize,
) -> Result<Hop, String> {
    if hops >= MAX_REDIRECTS {
        return Err(format!("redirected more than {MAX_REDIRECTS} times"));
    }
    match (from.scheme(), to.scheme()) {
        ("https", "https") | ("http", "http" | "https") => {}
        ("https", "http") => {
            return Err(format!(
                "redirected from HTTPS to plain HTTP ({}); refused",
                printable(to)
            ));
        }
        (_, other) => return Err(format!("redirected to a {other:?} URL; refused")),
    }
    Ok(if !left && same_origin(endpoint, to) {
        Hop::Endpoint
    } else {
        Hop::Bare
    })
}

/// A URL as messages show it: no user part, no query (presigned URLs carry secrets there).
pub(crate) fn printable(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins() {
        for (a, b, want) in [
            ("https://r.corp/v2/x", "https://r.corp:443/token", true),
            ("https://r.corp/v2", "https://R.CORP/t", true),
            ("https://r.corp/v2", "http://r.corp/t", false),
            ("https://r.corp/v2", "https://r.corp:5000/t", false),
            ("http://127.0.0.1:5000/v2", "http://127.0.0.1:5001/t", false),
            ("http://127.0.0.1:5000/v2", "http://localhost:5000/t", false),
            ("https://r.corp/v2", "https://auth.r.corp/t", false),
        ] {
            assert_eq!(same_origin(&u(a), &u(b)), want, "{a} {b}");
        }
        assert_eq!(authority(&u("https://r.corp/v2")), "r.corp");
        assert_eq!(authority(&u("http://127.0.0.1:5000/v2")), "127.0.0.1:5000");
        assert_eq!(authority(&u("http://[::1]:5000/v2")), "[::1]:5000");
    }

    #[test]
    fn realms() {
        use RealmCredentials::*;
        let cases: &[(&str, &str, bool, Result<RealmCredentials, &str>)] = &[
            // On the endpoint's own origin: its credentials.
            (
                "https://r.corp/v2",
                "https://r.corp/token",
                false,
                Ok(Endpoint),
            ),
            (
                "http://127.0.0.1:5000/v2",
                "http://127.0.0.1:5000/token",
                false,
                Ok(Endpoint),
            ),
            (
                "http://localhost:5000/v2",
                "http://localhost:5000/t",
                false,
                Ok(Endpoint),
            ),
            // Another host: its own configs entry, else nothing.
            (
                "https://r.corp/v2",
                "https://auth.corp/token",
                true,
                Ok(OwnConfig),
            ),
            (
                "https://r.corp/v2",
                "https://auth.corp/token",
                false,
                Ok(Anonymous),
            ),
            (
                "https://r.corp/v2",
                "https://r.corp:8443/token",
                false,
                Ok(Anonymous),
            ),
            (
                "http://127.0.0.1:5000/v2",
                "http://127.0.0.1:18081/token",
                false,
                Ok(Anonymous),
            ),
            (
                "http://127.0.0.1:5000/v2",
                "http://evil.corp/token",
                true,
                Ok(OwnConfig),
            ),
            // Docker Hub's token service.
            (
                "https://registry-1.docker.io/v2",
                "https://auth.docker.io/token",
                false,
                Ok(Endpoint),
            ),
            (
                "https://registry-1.docker.io/v2",
                "https://auth.docker.io:444/t",
                false,
                Ok(Anonymous),
            ),
            (
                "https://auth.docker.io/v2",
                "https://registry-1.docker.io/t",
                false,
                Ok(Anonymous),
            ),
            // Plain-HTTP realms: only for a plain-HTTP endpoint on loopback.
            (
                "https://r.corp/v2",
                "http://r.corp/token",
                false,
                Err("plain-HTTP token realm"),
            ),
            (
                "https://127.0.0.1:5000/v2",
                "http://127.0.0.1:5000/t",
                false,
                Err("plain-HTTP"),
            ),
            (
                "http://r.corp/v2",
                "http://r.corp/token",
                true,
                Err("plain-HTTP"),
            ),
            (
                "http://reg.localhost/v2",
                "http://reg.localhost/t",
                false,
                Err("plain-HTTP"),
            ),
            (
                "https://r.corp/v2",
                "ftp://r.corp/token",
                false,
                Err("scheme \"ftp\""),
            ),
        ];
        for (endpoint, realm, configured, want) in cases {
            let got = realm_credentials(&u(endpoint), &u(realm), *configured);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{endpoint} {realm}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{endpoint} {realm}: {g}"),
                _ => panic!("{endpoint} {realm}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn redirects() {
        use Hop::*;
        let e = "https://r.corp/v2/a/blobs/sha256:1";
        // endpoint, from, to, left already, hops so far, decision
        type Case<'a> = (&'a str, &'a str, &'a str, bool, usize, Result<Hop, &'a str>);
        let cases: &[Case] = &[
            // Same origin keeps what the endpoint gets.
            (e, e, "https://r.corp/other", false, 0, Ok(Endpoint)),
            (e, e, "https://r.corp:443/other", false, 1, Ok(Endpoint)),
            // Another host, port or scheme: bare, and bare from then on.
            (e, e, "https://cdn.corp/blob?sig=x", false, 0, Ok(Bare)),
            (e, e, "https://r.corp:8443/blob", false, 0, Ok(Bare)),
            (
                e,
                "https://cdn.corp/b",
                "https://r.corp/back",
                true,
                1,
                Ok(Bare),
            ),
            (
                "http://127.0.0.1:5000/v2",
                "http://127.0.0.1:5000/v2/b",
                "http://127.0.0.1:6000/b",
                false,
                0,
                Ok(Bare),
            ),
            (
                "http://r.corp/v2",
                "http://r.corp/v2/b",
                "https://r.corp/b",
                false,
                0,
                Ok(Bare),
            ),
            // Never down to plain HTTP, not even on the same host.
            (
                e,
                e,
                "http://r.corp/v2/a/blobs/sha256:1",
                false,
                0,
                Err("from HTTPS to plain HTTP"),
            ),
            (
                e,
                "https://cdn.corp/b",
                "http://cdn.corp/b",
                true,
                1,
                Err("plain HTTP"),
            ),
            (e, e, "file:///etc/shadow", false, 0, Err("\"file\"")),
            // Bounded.
            (
                e,
                e,
                "https://r.corp/other",
                false,
                MAX_REDIRECTS,
                Err("more than"),
            ),
        ];
        for (endpoint, from, to, left, hops, want) in cases {
            let got = redirect(&u(endpoint), &u(from), &u(to), *left, *hops);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{from} → {to}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{from} → {to}: {g}"),
                _ => panic!("{from} → {to}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn printable_urls() {
        assert_eq!(
            printable(&u("https://bob:pw@cdn.corp/b?X-Amz-Signature=s#f")),
            "https://cdn.corp/b"
        );
    }
}
