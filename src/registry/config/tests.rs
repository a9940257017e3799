use super::*;

fn bases(e: &[Endpoint]) -> Vec<(&str, EndpointKind)> {
    e.iter().map(|e| (e.base.as_str(), e.kind)).collect()
}

use EndpointKind::{Default as D, Mirror as M};

const YAML: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.corp:5000"
      - "http://plain.corp"
  "*":
    endpoint:
      - "http://127.0.0.1:1"
      - "cache.corp/proxy/path"
  reg.local:
    endpoint: []
configs:
  "mirror.corp:5000":
    auth:
      username: alice
      password: secret
    tls:
      insecure_skip_verify: true
  "cache.corp":
    auth:
      auth: Ym9iOmh1bnRlcjI=
  "quay.io":
    auth:
      identity_token: tok
"#;

#[test]
fn registries_yaml_order_wildcard_and_fallback() {
    let y = parse_registries_yaml(YAML, Path::new("r.yaml")).unwrap();
    let k3s = Some((Path::new("r.yaml"), &y));
    let cases: Vec<(&str, Vec<(&str, EndpointKind)>)> = vec![
        (
            "docker.io",
            vec![
                ("https://mirror.corp:5000/v2", M),
                ("http://plain.corp/v2", M),
                ("https://registry-1.docker.io/v2", D),
            ],
        ),
        (
            "quay.io",
            vec![
                ("http://127.0.0.1:1/v2", M),
                ("https://cache.corp/proxy/path", M),
                ("https://quay.io/v2", D),
            ],
        ),
        // An entry of its own (even empty) means the wildcard does not apply.
        ("reg.local", vec![("https://reg.local/v2", D)]),
        // Loopback registries: HTTPS, then plain HTTP.
        (
            "127.0.0.1:5000",
            vec![
                ("http://127.0.0.1:1/v2", M),
                ("https://cache.corp/proxy/path", M),
                ("https://127.0.0.1:5000/v2", D),
                ("http://127.0.0.1:5000/v2", D),
            ],
        ),
    ];
    for (host, want) in cases {
        assert_eq!(bases(&plan_endpoints(host, k3s, None)), want, "{host}");
    }
    let e = plan_endpoints("docker.io", k3s, None);
    assert_eq!(
        e[0].credentials,
        Some(Credentials::Basic {
            username: "alice".into(),
            password: "secret".into()
        })
    );
    assert!(e[0].skip_verify);
    assert!(!e[1].skip_verify && e[1].credentials.is_none());
    assert!(
        e[0].origin.contains("mirrors.\"docker.io\""),
        "{}",
        e[0].origin
    );
    let q = plan_endpoints("quay.io", k3s, None);
    assert_eq!(
        q[1].credentials,
        Some(Credentials::Basic {
            username: "bob".into(),
            password: "hunter2".into()
        })
    );
    assert!(q[0].origin.contains("mirrors.\"*\""));
    assert_eq!(
        q[2].credentials,
        Some(Credentials::IdentityToken("tok".into()))
    );
}

#[test]
fn credentials_in_urls_leave_the_url() {
    let y = parse_registries_yaml(
        "mirrors:\n  a.io:\n    endpoint: [\"http://bob:pw1@m.corp:5000\", \"https://eve:pw2@c.corp\"]\n\
         configs:\n  c.corp:\n    auth:\n      username: carol\n      password: pw3\n",
        Path::new("r.yaml"),
    )
    .unwrap();
    let h = parse_hosts_toml(
        "server = \"https://srv:pw4@s.corp\"\n[host.\"https://dan:pw5@h.corp\"]\n",
        Path::new("h.toml"),
    )
    .unwrap();
    let e = plan_endpoints("a.io", Some((Path::new("r.yaml"), &y)), Some(&h));
    let basic = |u: &str, p: &str| {
        Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    };
    assert_eq!(
        bases(&e),
        vec![
            ("http://m.corp:5000/v2", M),
            ("https://c.corp/v2", M),
            ("https://h.corp/v2", M),
            ("https://s.corp/v2", D),
        ]
    );
    assert_eq!(e[0].credentials, basic("bob", "pw1"));
    // The host's configs entry wins over a user part in the URL.
    assert_eq!(e[1].credentials, basic("carol", "pw3"));
    assert_eq!(e[2].credentials, basic("dan", "pw5"));
    assert_eq!(e[3].credentials, basic("srv", "pw4"));
    for e in &e {
        assert!(!format!("{e:?}").contains("pw"), "{e:?}");
    }
    let c = RegistryConfig {
        hosts_dir: None,
        k3s: Some((PathBuf::from("r.yaml"), y)),
    };
    assert_eq!(
        c.host_settings("c.corp"),
        HostSettings {
            configured: true,
            credentials: basic("carol", "pw3"),
            skip_verify: false,
            ca: vec![],
        }
    );
    assert_eq!(c.host_settings("m.corp:5000"), HostSettings::default());
}

#[test]
fn no_configuration_at_all() {
    let cases = [
        ("docker.io", vec![("https://registry-1.docker.io/v2", D)]),
        ("ghcr.io", vec![("https://ghcr.io/v2", D)]),
        (
            "localhost:5000",
            vec![
                ("https://localhost:5000/v2", D),
                ("http://localhost:5000/v2", D),
            ],
        ),
        (
            "[::1]:5000",
            vec![("https://[::1]:5000/v2", D), ("http://[::1]:5000/v2", D)],
        ),
        ("10.0.0.1:5000", vec![("https://10.0.0.1:5000/v2", D)]),
    ];
    for (host, want) in cases {
        assert_eq!(bases(&plan_endpoints(host, None, None)), want, "{host}");
    }
}

const HOSTS: &str = r#"
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]

[host."https://push-only.corp"]
  capabilities = ["push"]

[host."https://mirror.corp/v2/proxy"]
  override_path = true
  skip_verify = true
  ca = ["/etc/ca1.pem", "/etc/ca2.pem"]
  [host."https://mirror.corp/v2/proxy".header]
    x-token = "abc"

[host."https://a.corp"]
"#;

#[test]
fn hosts_toml_order_capabilities_and_paths() {
    let h = parse_hosts_toml(HOSTS, Path::new("/certs.d/docker.io/hosts.toml")).unwrap();
    assert_eq!(h.hosts.len(), 4);
    let e = plan_endpoints("docker.io", None, Some(&h));
    assert_eq!(
        bases(&e),
        vec![
            ("http://127.0.0.1:1/v2", M),
            ("https://mirror.corp/v2/proxy", M),
            ("https://a.corp/v2", M),
            ("https://registry-1.docker.io/v2", D),
        ]
    );
    assert!(e[1].skip_verify);
    assert_eq!(
        e[1].ca,
        vec![PathBuf::from("/etc/ca1.pem"), PathBuf::from("/etc/ca2.pem")]
    );
    assert_eq!(e[1].headers, vec![("x-token".into(), "abc".into())]);
    assert!(
        e[3].origin.ends_with("hosts.toml server"),
        "{}",
        e[3].origin
    );

    // A plain-HTTP server for a local registry, with a dead mirror first.
    let local = parse_hosts_toml(
        "server = \"http://127.0.0.1:5000\"\n[host.\"http://127.0.0.1:1\"]\n",
        Path::new("h.toml"),
    )
    .unwrap();
    assert_eq!(
        bases(&plan_endpoints("127.0.0.1:5000", None, Some(&local))),
        vec![
            ("http://127.0.0.1:1/v2", M),
            ("http://127.0.0.1:5000/v2", D)
        ]
    );

    // Both files: registries.yaml mirrors, hosts.toml mirrors, then the server; a
    // URL listed twice is tried once.
    let y = parse_registries_yaml(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:1\", \"https://z.corp\"]\n",
        Path::new("r.yaml"),
    )
    .unwrap();
    let both = plan_endpoints("docker.io", Some((Path::new("r.yaml"), &y)), Some(&h));
    assert_eq!(
        bases(&both),
        vec![
            ("http://127.0.0.1:1/v2", M),
            ("https://z.corp/v2", M),
            ("https://mirror.corp/v2/proxy", M),
            ("https://a.corp/v2", M),
            ("https://registry-1.docker.io/v2", D),
        ]
    );
}

#[test]
fn bad_files_are_errors_naming_them() {
    let e = parse_hosts_toml("server = [", Path::new("/x/hosts.toml")).unwrap_err();
    assert!(e.to_string().contains("/x/hosts.toml"), "{e}");
    let e = parse_hosts_toml(
        "[host.\"h\"]\nskip_verify = \"yes\"",
        Path::new("/x/h.toml"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"h\""), "{e}");
    let e = parse_registries_yaml("mirrors: [1, 2]", Path::new("/y/r.yaml")).unwrap_err();
    assert!(e.to_string().contains("/y/r.yaml"), "{e}");
    assert_eq!(
        parse_registries_yaml("  \n", Path::new("r")).unwrap(),
        RegistriesYaml::default()
    );
}

#[test]
fn helpers() {
    for (url, ov, want) in [
        ("https://m.corp", false, "https://m.corp/v2"),
        ("https://m.corp/", false, "https://m.corp/v2"),
        ("https://m.corp/v2", false, "https://m.corp/v2"),
        ("https://m.corp/v2/", false, "https://m.corp/v2"),
        ("https://m.corp/prefix", false, "https://m.corp/prefix/v2"),
        ("https://m.corp/prefix", true, "https://m.corp/prefix"),
        ("m.corp:5000", false, "https://m.corp:5000/v2"),
        ("http://127.0.0.1:5000", false, "http://127.0.0.1:5000/v2"),
    ] {
        assert_eq!(api_base(url, ov), want, "{url} {ov}");
    }
    for (host, want) in [
        ("localhost", true),
        ("localhost:5000", true),
        ("127.0.0.1:5000", true),
        ("127.1.2.3", true),
        ("[::1]:5000", true),
        ("LocalHost", true),
        ("[::1]", true),
        ("127.255.0.1:80", true),
        ("reg.localhost:80", false),
        ("localhost.localdomain", false),
        ("128.0.0.1", false),
        ("[::2]:5000", false),
        ("10.0.0.1:5000", false),
        ("docker.io", false),
        ("localhost.corp", false),
    ] {
        assert_eq!(is_loopback(host), want, "{host}");
    }
    for (url, clean, creds) in [
        (
            "http://bob:pw@m.corp:5000/v2",
            "http://m.corp:5000/v2",
            Some(("bob", "pw")),
        ),
        ("https://bob@m.corp", "https://m.corp", Some(("bob", ""))),
        ("bob:p%40ss@m.corp/x", "m.corp/x", Some(("bob", "p@ss"))),
        ("https://m.corp/a@b", "https://m.corp/a@b", None),
        ("https://m.corp?x=a@b", "https://m.corp?x=a@b", None),
        ("https://a:b@c@m.corp", "https://m.corp", Some(("a", "b@c"))),
    ] {
        let (got, got_creds) = split_userinfo(url);
        assert_eq!(got, clean, "{url}");
        assert_eq!(redact(url), clean, "{url}");
        assert_eq!(
            got_creds,
            creds.map(|(u, p)| (u.to_string(), p.to_string())),
            "{url}"
        );
    }
    assert_eq!(base64_decode("Ym9iOmh1bnRlcjI=").unwrap(), b"bob:hunter2");
    assert_eq!(base64_decode("YQ").unwrap(), b"a");
    assert!(base64_decode("not base64!").is_none());
}
