//! `export --fetch-missing` against hostile registries on loopback: the node's
//! credentials, tokens and configured headers never reach another host, whatever the
//! registry answers, and no message prints a password.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::json::ExportResult;
use crate::run::crimg;
use crate::support::archives::export_dir;
use crate::support::content::{discarded_image, pulled_layer};
use crate::support::registry::{HostileServer, Reply, basic};

const PASSWORD: &str = "s3cret-pw";

/// True when `text` holds the password, plain or inside Basic credentials.
fn leaks(text: &str, user: &str) -> bool {
    text.contains(PASSWORD) || text.contains(basic(user, PASSWORD).trim_start_matches("Basic "))
}

/// A mirror whose Bearer challenge names a realm on another host (and asks for push
/// rights): the realm gets an anonymous pull-only token request, the password given in
/// the mirror's URL never leaves for it and is never printed, even with `-v`.
#[test]
fn fetch_token_realm_on_another_host_gets_no_credentials() {
    let (node, registry, img) = discarded_image();
    let layer = pulled_layer(&node, &img.name);
    let realm =
        HostileServer::start(|_| Reply::new("200 OK").body(br#"{"token":"realm-token"}"#.to_vec()));
    let realm_url = format!("{}/token", realm.url());
    let mirror = HostileServer::start(move |seen| {
        match seen.header("authorization") {
        None => Reply::new("401 Unauthorized").header(
            "WWW-Authenticate",
            &format!(
                "Bearer realm=\"{realm_url}\",service=\"evil\",scope=\"repository:team/app:pull,push\""
            ),
        ),
        Some(_) => Reply::new("404 Not Found"),
    }
    });
    let yaml = node.dir().join("registries.yaml");
    fs::write(
        &yaml,
        format!(
            "mirrors:\n  \"{}\":\n    endpoint: [\"http://alice:{PASSWORD}@127.0.0.1:{}\"]\n",
            registry.host(),
            mirror.port
        ),
    )
    .unwrap();
    let file = export_dir(&node).join("app.tar");
    let run = crimg(
        node.crimg(),
        &[
            "-v",
            "-o",
            "json",
            "export",
            "--fetch-missing",
            "--registries-yaml",
            yaml.to_str().unwrap(),
            "--registry-config-dir",
            node.dir().join("none").to_str().unwrap(),
            "-O",
            file.to_str().unwrap(),
            &img.name,
        ],
    )
    .expect_code(0);
    // The mirror failed; the registry itself served the layer.
    let result: ExportResult = run.json();
    assert_eq!(result.fetched, vec![layer.clone()], "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{}", mirror.port)),
        "the mirror is named in verbose output:\n{}",
        run.stderr
    );
    assert!(!leaks(&run.stderr, "alice"), "{}", run.stderr);

    let asked = realm.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].target(),
        "/token?service=evil&scope=repository%3Ateam%2Fapp%3Apull",
        "pull only, whatever the challenge asked"
    );
    assert_eq!(asked[0].header("authorization"), None, "{asked:?}");
    for r in &asked {
        assert!(!leaks(&r.text(), "alice"), "{r:?}");
    }
    // The mirror's token went to the mirror: nothing else did.
    let seen = mirror.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[1].header("authorization"), Some("Bearer realm-token"));
}

/// A mirror that wants Basic credentials and a configured header, then redirects the blob
/// to another host: that host gets a bare GET (no credentials, header or Referer), and its
/// own 401 is that hop failing, named as such, not a login with the mirror's credentials.
#[test]
fn fetch_redirect_to_another_host_is_a_bare_get() {
    let (node, registry, img) = discarded_image();
    let layer = pulled_layer(&node, &img.name);
    let blob = registry.blob(&layer);
    let host = registry.host();
    drop(registry);

    let serve = Arc::new(AtomicBool::new(false));
    let serving = serve.clone();
    let target = HostileServer::start(move |seen| {
        if serving.load(Ordering::SeqCst) && seen.target().starts_with("/cdn/") {
            Reply::new("200 OK").body(blob.clone())
        } else {
            let port = seen.header("host").unwrap_or("").to_string();
            Reply::new("401 Unauthorized").header(
                "WWW-Authenticate",
                &format!("Bearer realm=\"http://{port}/token\",service=\"cdn\""),
            )
        }
    });
    let cdn = format!("{}/cdn/{layer}?sig=presigned-secret", target.url());
    let want = basic("alice", PASSWORD);
    let mirror = HostileServer::start(move |seen| {
        if seen.header("authorization") == Some(want.as_str()) {
            Reply::new("307 Temporary Redirect").header("Location", &cdn)
        } else {
            Reply::new("401 Unauthorized").header("WWW-Authenticate", "Basic realm=\"mirror\"")
        }
    });
    let certs = node.dir().join("certs.d");
    fs::create_dir_all(certs.join(&host)).unwrap();
    fs::write(
        certs.join(&host).join("hosts.toml"),
        format!(
            "[host.\"http://127.0.0.1:{p}\"]\n  capabilities = [\"pull\"]\n  \
             [host.\"http://127.0.0.1:{p}\".header]\n    x-mirror-key = \"header-secret\"\n",
            p = mirror.port
        ),
    )
    .unwrap();
    let yaml = node.dir().join("registries.yaml");
    fs::write(
        &yaml,
        format!(
            "configs:\n  \"127.0.0.1:{}\":\n    auth:\n      username: alice\n      password: {PASSWORD}\n",
            mirror.port
        ),
    )
    .unwrap();
    let file = export_dir(&node).join("app.tar");
    let args = [
        "-o",
        "json",
        "export",
        "--fetch-missing",
        "--registries-yaml",
        yaml.to_str().unwrap(),
        "--registry-config-dir",
        certs.to_str().unwrap(),
        "-O",
        file.to_str().unwrap(),
        &img.name,
    ];

    // The redirect target answers 401: the hop fails, named; no token is asked for.
    let run = crimg(node.crimg(), &args).expect_code(1);
    let named = format!(
        "redirect target {}/cdn/{layer} answered 401 Unauthorized",
        target.url()
    );
    assert!(
        run.stderr.contains(&named),
        "{named:?} not in:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("presigned-secret"), "{}", run.stderr);
    assert!(!leaks(&run.stderr, "alice"), "{}", run.stderr);
    assert!(
        !target
            .requests()
            .iter()
            .any(|r| r.target().starts_with("/token")),
        "{:?}",
        target.requests()
    );

    // The redirect target serves it: fetched through the mirror.
    serve.store(true, Ordering::SeqCst);
    let run = crimg(node.crimg(), &args).expect_code(0);
    let result: ExportResult = run.json();
    assert_eq!(result.fetched, vec![layer.clone()], "{}", run.stderr);

    // The mirror got the credentials and the header (so they were configured)...
    let at_mirror = mirror.requests();
    assert!(
        at_mirror.iter().any(|r| r.header("authorization")
            == Some(basic("alice", PASSWORD).as_str())
            && r.header("x-mirror-key") == Some("header-secret")),
        "{at_mirror:?}"
    );
    // ...and the other host none of them, in either run.
    let at_target = target.requests();
    assert_eq!(at_target.len(), 2, "{at_target:?}");
    for r in &at_target {
        assert!(
            r.target()
                .starts_with(&format!("/cdn/{layer}?sig=presigned-secret")),
            "{r:?}"
        );
        for h in ["authorization", "x-mirror-key", "referer"] {
            assert_eq!(r.header(h), None, "{h} sent to another host: {r:?}");
        }
        assert!(!leaks(&r.text(), "alice"), "{r:?}");
        assert!(!r.text().contains("header-secret"), "{r:?}");
    }
}

/// An HTTPS mirror (self-signed, trusted through hosts.toml `skip_verify`) that redirects:
/// to plain HTTP the redirect is refused and the plain server hears nothing; to another
/// HTTPS host the certificate is verified, since only the mirror's own configuration relaxes
/// it; served directly, the blob arrives (so the mirror itself works).
#[test]
fn fetch_from_https_mirror_refuses_downgrade_and_keeps_skip_verify_to_its_host() {
    use std::sync::atomic::AtomicUsize;
    let (node, registry, img) = discarded_image();
    let layer = pulled_layer(&node, &img.name);
    let blob = registry.blob(&layer);
    let host = registry.host();
    drop(registry);

    let tls_dir = node.dir().join("tls");
    fs::create_dir_all(&tls_dir).unwrap();
    let b = blob.clone();
    let plain = HostileServer::start(move |_| Reply::new("200 OK").body(b.clone()));
    let b = blob.clone();
    let other_tls =
        HostileServer::start_tls(&tls_dir, move |_| Reply::new("200 OK").body(b.clone()));
    let mode = Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    let (to_plain, to_tls) = (
        format!("{}/cdn/{layer}", plain.url()),
        format!("{}/cdn/{layer}", other_tls.url()),
    );
    let mirror = HostileServer::start_tls(&tls_dir, move |_| match m.load(Ordering::SeqCst) {
        0 => Reply::new("307 Temporary Redirect").header("Location", &to_plain),
        1 => Reply::new("302 Found").header("Location", &to_tls),
        _ => Reply::new("200 OK").body(blob.clone()),
    });
    let certs = node.dir().join("certs.d");
    fs::create_dir_all(certs.join(&host)).unwrap();
    fs::write(
        certs.join(&host).join("hosts.toml"),
        format!(
            "[host.\"{}\"]\n  capabilities = [\"pull\"]\n  skip_verify = true\n",
            mirror.url()
        ),
    )
    .unwrap();
    let file = export_dir(&node).join("app.tar");
    let no_yaml = node.dir().join("none.yaml");
    let args = [
        "-o",
        "json",
        "export",
        "--fetch-missing",
        "--registries-yaml",
        no_yaml.to_str().unwrap(),
        "--registry-config-dir",
        certs.to_str().unwrap(),
        "-O",
        file.to_str().unwrap(),
        &img.name,
    ];

    let run = crimg(node.crimg(), &args).expect_code(1);
    assert!(
        run.stderr.contains("redirected from HTTPS to plain HTTP"),
        "{}",
        run.stderr
    );
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());

    mode.store(1, Ordering::SeqCst);
    let run = crimg(node.crimg(), &args).expect_code(1);
    let named = format!("redirect target {}/cdn/{layer}: ", other_tls.url());
    assert!(
        run.stderr.contains(&named),
        "{named:?} not in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("certificate"),
        "a verification failure:\n{}",
        run.stderr
    );
    assert!(
        other_tls.requests().is_empty(),
        "{:?}",
        other_tls.requests()
    );

    mode.store(2, Ordering::SeqCst);
    let run = crimg(node.crimg(), &args).expect_code(0);
    let result: ExportResult = run.json();
    assert_eq!(result.fetched, vec![layer], "{}", run.stderr);
    assert_eq!(mirror.requests().len(), 3, "{:?}", mirror.requests());
}
