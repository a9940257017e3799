//! A local registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its storage in a test dir, images pushed with `skopeo`, and pulls
//! through CRI so containerd records where the blobs came from.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crimg::proto::runtime::v1 as cri;

use super::fixtures::FixtureImage;
use super::node::Node;

/// A free loopback port, found by binding port 0. The registry binds it a moment later;
/// nothing else on this machine hands out loopback ports meanwhile in practice.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// A running `docker-registry serve`; dropping it stops it.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry on `port` storing under `dir/registry`; waits until `/v2/`
    /// answers.
    pub fn start(dir: &Path, port: u16) -> Registry {
        let dir = dir.join("registry");
        fs::create_dir_all(dir.join("storage")).expect("create registry dir");
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("create registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry (is the docker-registry package installed?)");
        let mut registry = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while registry.get_status("/v2/") != Some(200) {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", registry.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on 127.0.0.1:{port}:\n{}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log: its access log shows every request it served.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes a fixture to `<host>/<repo>:<tag of the fixture>` with skopeo.
    pub fn push(&self, image: &FixtureImage, repo: &str) {
        let tar = self
            .dir
            .join(format!("push-{}.tar", repo.replace('/', "_")));
        image.write_oci_tar(&tar);
        let src = format!("oci-archive:{}:{}", tar.display(), image.tag());
        let dest = format!("docker://{}/{repo}:{}", self.host(), image.tag());
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(&src)
            .arg(&dest)
            .stdin(Stdio::null())
            .output()
            .expect("run skopeo (is the skopeo package installed?)");
        assert!(
            out.status.success(),
            "skopeo copy {src} {dest} failed:\n{}\n--- registry log\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// The HTTP status of a GET on this registry, `None` when it does not answer.
    fn get_status(&self, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head).ok()?;
        let line = String::from_utf8_lossy(&head[..n]);
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// The bytes of a blob the registry stores (distribution's filesystem layout).
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.trim_start_matches("sha256:");
        fs::read(
            self.dir
                .join("storage/docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data"),
        )
        .unwrap_or_else(|e| panic!("registry has no blob {digest}: {e}"))
    }
}

/// A minimal token-authenticated registry mirror on a loopback port: blob GETs need
/// `Authorization: Bearer <token>`, else they get a 401 Bearer challenge whose realm
/// (`/token`) hands out the token for HTTP Basic `username:password`. Every request line
/// and its Authorization header are recorded. Serves one connection at a time and stops
/// when dropped.
pub struct TokenMirror {
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenMirror {
    pub const TOKEN: &str = "t0k3n";

    pub fn start(blobs: Vec<(String, Vec<u8>)>, username: &str, password: &str) -> TokenMirror {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind mirror");
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let basic = format!(
            "Basic {}",
            base64(format!("{username}:{password}").as_bytes())
        );
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Some((line, auth)) = read_request(&mut conn) else {
                    continue;
                };
                reqs.lock().unwrap().push(format!("{line} auth={auth}"));
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let challenge =
                    format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"mirror\"");
                let (status, headers, body): (&str, Vec<String>, Vec<u8>) =
                    if path.starts_with("/token") {
                        if auth == basic {
                            let body = format!("{{\"token\":\"{}\"}}", Self::TOKEN);
                            ("200 OK", vec![], body.into_bytes())
                        } else {
                            ("401 Unauthorized", vec![], vec![])
                        }
                    } else if auth != format!("Bearer {}", Self::TOKEN) {
                        (
                            "401 Unauthorized",
                            vec![format!("WWW-Authenticate: {challenge}")],
                            vec![],
                        )
                    } else {
                        let digest = path
                            .split('?')
                            .next()
                            .and_then(|p| p.rsplit('/').next())
                            .unwrap_or("");
                        match blobs.iter().find(|(d, _)| d == digest) {
                            Some((_, b)) => ("200 OK", vec![], b.clone()),
                            None => ("404 Not Found", vec![], vec![]),
                        }
                    };
                let mut head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for h in headers {
                    head.push_str(&h);
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        TokenMirror {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `request line auth=<Authorization header>` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenMirror {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request's head: its first line and its Authorization header.
fn read_request(conn: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let first = lines.next()?.to_string();
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Some((first, auth))
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Node {
    /// Pulls an image through CRI `PullImage` (as the kubelet would) and returns the
    /// image reference CRI answers with.
    pub fn pull(&self, image: &str) -> String {
        let mut c = self.image_client();
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        };
        self.call(&format!("CRI PullImage {image}"), c.pull_image(req))
            .image_ref
    }
}

/// One request a [`HostileServer`] received: its request line and every header.
#[derive(Debug, Clone)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The request target: path and query.
    pub fn target(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }

    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole request head as text, to search for secrets anywhere in it.
    pub fn text(&self) -> String {
        let mut s = self.line.clone();
        for (k, v) in &self.headers {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s
    }
}

/// A hostile server's answer.
pub struct Reply {
    /// `200 OK`, `307 Temporary Redirect`…
    pub status: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: &'static str) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: Vec<u8>) -> Reply {
        self.body = b;
        self
    }
}

/// A scripted HTTP server on a random loopback port, for registries that misbehave:
/// `handler` answers each request; every request is recorded with all its headers.
/// Bounded: one connection at a time, at most 200 requests and 5 minutes, then it stops
/// by itself; dropping it stops it sooner.
pub struct HostileServer {
    pub port: u16,
    tls: bool,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileServer {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + 'static) -> HostileServer {
        Self::serve(None, handler)
    }

    /// The same over TLS, with a self-signed certificate for `127.0.0.1` made in `dir`
    /// (`dir/cert.pem`) by the `openssl` command.
    pub fn start_tls(
        dir: &Path,
        handler: impl Fn(&Seen) -> Reply + Send + 'static,
    ) -> HostileServer {
        use rustls_pki_types::pem::PemObject;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() {
            let out = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl (is the openssl package installed?)");
            assert!(
                out.status.success(),
                "openssl req failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
            .expect("read cert.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse cert.pem");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).expect("read key.pem");
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS server config");
        Self::serve(Some(std::sync::Arc::new(config)), handler)
    }

    fn serve(
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Seen) -> Reply + Send + 'static,
    ) -> HostileServer {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind hostile server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let is_tls = tls.is_some();
        let thread = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(300);
            let mut served = 0;
            while served < 200 && Instant::now() < until && !stopping.load(Ordering::SeqCst) {
                let conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(_) => continue,
                };
                served += 1;
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut conn: Box<dyn ReadWrite> = match &tls {
                    None => Box::new(conn),
                    Some(config) => match rustls::ServerConnection::new(config.clone()) {
                        Ok(tls) => Box::new(rustls::StreamOwned::new(tls, conn)),
                        Err(_) => continue,
                    },
                };
                // A client that refuses the certificate never gets here: nothing recorded.
                let Some(seen) = read_head(&mut conn) else {
                    continue;
                };
                reqs.lock().unwrap().push(seen.clone());
                let reply = handler(&seen);
                let mut head = format!(
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&reply.body);
                let _ = conn.flush();
            }
        });
        HostileServer {
            port,
            tls: is_tls,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn read_head(conn: &mut dyn ReadWrite) -> Option<Seen> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let line = lines.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Seen { line, headers })
}

/// Standard base64, for expected `Authorization: Basic` values.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}
