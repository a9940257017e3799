//! A gRPC proxy in front of a node's socket that refuses containerd's `Images.Delete` for
//! the records of one image, the first one whose deletion is asked for, and forwards every
//! other call unchanged, so a test can make one removal fail for real (crimg sees a gRPC
//! error from the socket it talks to) while the others, all after it, go through to
//! containerd.
//!
//! Written on hyper's HTTP/2 connections directly: tonic generates no server for the
//! protos here, and a proxy has to forward calls it does not know.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crimg::proto::containerd::services::images::v1::DeleteImageRequest;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::net::{UnixListener, UnixStream};

use super::node::Node;

const DELETE: &str = "/containerd.services.images.v1.Images/Delete";

type Body = BoxBody<Bytes, hyper::Error>;

/// What to refuse, and what was refused.
struct Fault {
    /// The record names of each image.
    images: Vec<Vec<String>>,
    /// The index in `images` of the image refused: the first one asked for.
    chosen: Mutex<Option<usize>>,
    /// gRPC status code and message of a refusal.
    code: u32,
    message: String,
    refused: Mutex<Vec<String>>,
    /// Every `Images.Delete` asked for, refused or forwarded, in order.
    deletes: Mutex<Vec<String>>,
}

/// The proxy; dropping it stops it.
pub struct FaultProxy {
    socket: PathBuf,
    fault: Arc<Fault>,
    rt: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Listens beside the node's socket. The first `Images.Delete` of a record in
    /// `images` (each entry the record names of one image) chooses that image; every
    /// `Images.Delete` of its records answers gRPC status `code` with `message` without
    /// reaching containerd.
    pub fn refuse_first_image_removed(
        node: &Node,
        images: &[Vec<String>],
        code: u32,
        message: &str,
    ) -> Self {
        let socket = node.dir().join("fault-proxy.sock");
        let fault = Arc::new(Fault {
            images: images.to_vec(),
            chosen: Mutex::new(None),
            code,
            message: message.to_owned(),
            refused: Mutex::new(Vec::new()),
            deletes: Mutex::new(Vec::new()),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("build proxy runtime");
        let listener = rt
            .block_on(async { UnixListener::bind(&socket) })
            .expect("bind proxy socket");
        rt.spawn(serve(listener, node.socket().to_owned(), fault.clone()));
        FaultProxy {
            socket,
            fault,
            rt: Some(rt),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The record names whose deletion was refused, in the order asked.
    pub fn refused(&self) -> Vec<String> {
        self.fault.refused.lock().expect("proxy lock").clone()
    }

    /// Every record name whose deletion was asked for, refused or not, in order.
    pub fn deletes(&self) -> Vec<String> {
        self.fault.deletes.lock().expect("proxy lock").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One upstream HTTP/2 connection per accepted client connection.
async fn serve(listener: UnixListener, upstream: PathBuf, fault: Arc<Fault>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let (upstream, fault) = (upstream.clone(), fault.clone());
        tokio::spawn(async move {
            let Ok(up) = UnixStream::connect(&upstream).await else {
                return;
            };
            let Ok((sender, conn)) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(up)).await
            else {
                return;
            };
            tokio::spawn(conn);
            let service =
                hyper::service::service_fn(move |req| handle(req, sender.clone(), fault.clone()));
            // A connection ends when crimg closes it; how it ended does not matter here.
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(client), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    sender: SendRequest<Body>,
    fault: Arc<Fault>,
) -> Result<Response<Body>, hyper::Error> {
    if req.uri().path() != DELETE {
        return forward(sender, req.map(BodyExt::boxed)).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    // One uncompressed gRPC message: a flag byte, a 4-byte length, the message.
    let name = DeleteImageRequest::decode(bytes.get(5..).unwrap_or_default())
        .map(|r| r.name)
        .unwrap_or_default();
    fault.deletes.lock().expect("proxy lock").push(name.clone());
    let refuse = {
        let mut chosen = fault.chosen.lock().expect("proxy lock");
        let of = fault
            .images
            .iter()
            .position(|records| records.contains(&name));
        if chosen.is_none() {
            *chosen = of;
        }
        of.is_some() && *chosen == of
    };
    if refuse {
        fault.refused.lock().expect("proxy lock").push(name);
        // A trailers-only response: the status is in the headers, the body is empty.
        let resp = Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", fault.code.to_string())
            .header("grpc-message", fault.message.as_str())
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .expect("valid response");
        return Ok(resp);
    }
    let body = Full::new(bytes).map_err(|never| match never {}).boxed();
    forward(sender, Request::from_parts(parts, body)).await
}

async fn forward(
    mut sender: SendRequest<Body>,
    req: Request<Body>,
) -> Result<Response<Body>, hyper::Error> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    Ok(resp.map(BodyExt::boxed))
}
