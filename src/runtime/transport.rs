//! Unix-socket gRPC channels for CRI and containerd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Normalises `unix:///run/x.sock`, `unix:/run/x.sock` or a bare path into a filesystem path.
/// Other schemes (tcp, npipe) are not supported on a node and are rejected.
pub(crate) fn socket_path(endpoint: &str) -> Result<PathBuf, String> {
    let ep = endpoint.trim();
    if let Some(rest) = ep.strip_prefix("unix://") {
        return Ok(PathBuf::from(rest));
    }
    if let Some(rest) = ep.strip_prefix("unix:") {
        return Ok(PathBuf::from(rest));
    }
    if ep.contains("://") {
        return Err(format!(
            "endpoint {ep:?}: only unix sockets are supported (unix:///path or a bare path)"
        ));
    }
    Ok(PathBuf::from(ep))
}

/// Opens a channel to a gRPC server on a unix socket and connects eagerly, so an absent
/// or dead socket is reported here rather than at the first call.
pub async fn connect_unix(path: &Path, connect_timeout: Duration) -> std::io::Result<Channel> {
    let path = path.to_path_buf();
    // The URI is never dialled: the connector below opens the socket.
    let endpoint = Endpoint::try_from("http://[::]:50051")
        .expect("static URI is valid")
        .connect_timeout(connect_timeout)
        // Wide enough that reads of large blobs are not throttled by flow control, narrow
        // enough that what the server may send ahead stays a few MiB.
        .initial_connection_window_size(Some(8 << 20))
        .initial_stream_window_size(Some(4 << 20));
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    });
    let fut = endpoint.connect_with_connector(connector);
    match tokio::time::timeout(connect_timeout, fut).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(match io_kind(&e) {
            // Said plainly: these are what an operator acts on.
            Some(kind @ std::io::ErrorKind::PermissionDenied) => {
                std::io::Error::new(kind, "permission denied")
            }
            Some(kind @ std::io::ErrorKind::NotFound) => {
                std::io::Error::new(kind, "no such socket")
            }
            Some(kind @ std::io::ErrorKind::ConnectionRefused) => {
                std::io::Error::new(kind, "connection refused: nothing listens on it")
            }
            Some(kind) => std::io::Error::new(kind, flatten(&e)),
            None => std::io::Error::other(flatten(&e)),
        }),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out connecting",
        )),
    }
}

/// The kind of the I/O error under a transport error, if one is there.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

fn flatten(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths() {
        let cases = [
            (
                "unix:///run/containerd/containerd.sock",
                Some("/run/containerd/containerd.sock"),
            ),
            (
                "unix:/run/k3s/containerd/containerd.sock",
                Some("/run/k3s/containerd/containerd.sock"),
            ),
            ("/var/run/crio/crio.sock", Some("/var/run/crio/crio.sock")),
            ("tcp://127.0.0.1:1234", None),
        ];
        for (input, want) in cases {
            assert_eq!(socket_path(input).ok(), want.map(PathBuf::from), "{input}");
        }
    }
}
