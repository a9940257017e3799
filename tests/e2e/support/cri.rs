//! CRI and containerd API calls made by the harness itself (not through crimg).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crimg::proto::containerd::services::images::v1 as ctrd;
use crimg::proto::runtime::v1 as cri;
use ctrd::images_client::ImagesClient;
use tonic::transport::Channel;

use super::node::{NAMESPACE, Node};

type RuntimeClient = cri::runtime_service_client::RuntimeServiceClient<Channel>;
type ImageClient = cri::image_service_client::ImageServiceClient<Channel>;

/// Upper bound for one harness call, so a wedged containerd fails the test instead of
/// hanging it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn version(ch: Channel) -> Result<cri::VersionResponse, tonic::Status> {
    let req = cri::VersionRequest {
        version: "v1".to_owned(),
    };
    Ok(RuntimeClient::new(ch).version(req).await?.into_inner())
}

impl Node {
    /// The open gRPC channel to the node's socket.
    pub fn channel(&self) -> Channel {
        self.channel.clone().expect("node is running")
    }

    pub fn runtime_client(&self) -> RuntimeClient {
        RuntimeClient::new(self.channel())
    }

    pub fn image_client(&self) -> ImageClient {
        ImageClient::new(self.channel())
    }

    /// containerd's image store client; wrap requests with [`Node::namespaced`].
    pub fn images_client(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel())
    }

    /// A request carrying the `containerd-namespace: k8s.io` header.
    pub fn namespaced<T>(msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.metadata_mut()
            .insert("containerd-namespace", NAMESPACE.parse().expect("ascii"));
        req
    }

    /// Runs a future on the node's runtime with a timeout; a gRPC error fails the test
    /// with containerd's log.
    pub fn call<T, F>(&self, what: &str, fut: F) -> T
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        // The timer must be created inside the runtime.
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, fut).await })
        {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => self.fail(&format!(
                "{what} failed: {:?}: {}",
                status.code(),
                status.message()
            )),
            Err(_) => self.fail(&format!("{what} timed out after {CALL_TIMEOUT:?}")),
        }
    }

    /// Runs any future on the node's runtime (for tests making their own gRPC calls).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// CRI ListImages.
    pub fn cri_images(&self) -> Vec<cri::Image> {
        let mut c = self.image_client();
        let req = cri::ListImagesRequest { filter: None };
        self.call("CRI ListImages", c.list_images(req)).images
    }

    /// CRI ListImages ids (`sha256:<config digest>`).
    pub fn cri_image_ids(&self) -> Vec<String> {
        self.cri_images().into_iter().map(|i| i.id).collect()
    }

    /// CRI ImageStatus of a reference or ID; `None` when CRI does not have it.
    pub fn cri_image_status(&self, image: &str) -> Option<cri::Image> {
        let mut c = self.image_client();
        let req = cri::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        self.call("CRI ImageStatus", c.image_status(req)).image
    }

    /// containerd image records' names in the k8s.io namespace (CRI's ID records included).
    pub fn image_names(&self) -> Vec<String> {
        let mut c = self.images_client();
        let req = Node::namespaced(ctrd::ListImagesRequest { filters: vec![] });
        let mut names: Vec<String> = self
            .call("containerd Images.List", c.list(req))
            .images
            .into_iter()
            .map(|i| i.name)
            .collect();
        names.sort();
        names
    }

    /// The labels of containerd's image record `name`; fails the test if there is none.
    pub fn image_labels(&self, name: &str) -> BTreeMap<String, String> {
        let mut c = self.images_client();
        let req = Node::namespaced(ctrd::GetImageRequest {
            name: name.to_owned(),
        });
        let image = self.call(&format!("containerd Images.Get {name}"), c.get(req));
        let image = image
            .image
            .unwrap_or_else(|| self.fail(&format!("no image record {name}")));
        image.labels.into_iter().collect()
    }

    /// The pod config `run_pod(name)` used; CreateContainer needs it again.
    pub fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_owned(),
                uid: format!("uid-{name}"),
                namespace: "crimg-e2e".to_owned(),
                attempt: 0,
            }),
            log_directory: self.dir.join("pods").join(name).display().to_string(),
            labels: HashMap::from([("io.crimg.test/pod".to_owned(), name.to_owned())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(host_network()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Imports the sandbox image if needed and runs a host-network pod; returns its id.
    pub fn run_pod(&self, name: &str) -> String {
        self.ensure_pause_image();
        self.run_pod_on(name, "")
    }

    /// Runs a host-network pod with a runtime handler (a RuntimeClass's), the sandbox
    /// image already there for the handler's snapshotter; returns its id.
    pub fn run_pod_on(&self, name: &str, runtime_handler: &str) -> String {
        let config = self.pod_config(name);
        std::fs::create_dir_all(&config.log_directory).expect("create pod log dir");
        let mut c = self.runtime_client();
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        self.call(&format!("CRI RunPodSandbox {name}"), c.run_pod_sandbox(req))
            .pod_sandbox_id
    }

    /// Creates (does not start) a container of `image` in pod `pod` (id) named `pod_name`
    /// (as given to `run_pod`). `args` go to the entrypoint `/pause`.
    pub fn create_container(
        &self,
        pod: &str,
        pod_name: &str,
        image: &str,
        args: &[&str],
    ) -> String {
        let config = self.container_config(image, args);
        self.call(
            &format!("CRI CreateContainer {image}"),
            self.create_container_from(pod, pod_name, config),
        )
        .container_id
    }

    /// Creates a container of `image` that mounts `volume` (an image, Kubernetes'
    /// ImageVolume) read-only at `/volume`; CRI's answer as it is, refusal included.
    pub fn create_container_mounting(
        &self,
        pod: &str,
        pod_name: &str,
        image: &str,
        volume: &str,
    ) -> Result<String, tonic::Status> {
        let mut config = self.container_config(image, &[]);
        config.mounts.push(cri::Mount {
            container_path: "/volume".into(),
            readonly: true,
            image: Some(image_spec(volume)),
            ..Default::default()
        });
        let fut = self.create_container_from(pod, pod_name, config);
        self.block_on(fut).map(|r| r.into_inner().container_id)
    }

    fn create_container_from(
        &self,
        pod: &str,
        pod_name: &str,
        config: cri::ContainerConfig,
    ) -> impl Future<Output = Result<tonic::Response<cri::CreateContainerResponse>, tonic::Status>> + use<>
    {
        let mut c = self.runtime_client();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_owned(),
            config: Some(config),
            sandbox_config: Some(self.pod_config(pod_name)),
        };
        async move { c.create_container(req).await }
    }

    fn container_config(&self, image: &str, args: &[&str]) -> cri::ContainerConfig {
        // CRI rejects a second container of the same name in a pod.
        let name = format!("c{}", self.next_container.fetch_add(1, Ordering::Relaxed));
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.clone(),
                attempt: 0,
            }),
            image: Some(image_spec(image)),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            log_path: format!("{name}.log"),
            labels: HashMap::from([("io.crimg.test/container".to_owned(), name.clone())]),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(host_network()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn start_container(&self, id: &str) {
        let mut c = self.runtime_client();
        let req = cri::StartContainerRequest {
            container_id: id.to_owned(),
        };
        self.call("CRI StartContainer", c.start_container(req));
    }

    /// A started container whose process waits for a signal.
    pub fn run_container(&self, pod: &str, pod_name: &str, image: &str) -> String {
        let id = self.create_container(pod, pod_name, image, &[]);
        self.start_container(&id);
        id
    }

    /// A started container whose process exited at once; returns when CRI says EXITED.
    pub fn run_exited_container(&self, pod: &str, pod_name: &str, image: &str) -> String {
        let id = self.create_container(pod, pod_name, image, &["exit"]);
        self.start_container(&id);
        self.wait_for(&format!("container {id} to exit"), || {
            self.container_state(&id) == cri::ContainerState::ContainerExited
        });
        id
    }

    /// CRI ContainerStatus state.
    pub fn container_state(&self, id: &str) -> cri::ContainerState {
        let mut c = self.runtime_client();
        let req = cri::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let status = self.call("CRI ContainerStatus", c.container_status(req));
        status
            .status
            .map_or(cri::ContainerState::ContainerUnknown, |s| s.state())
    }

    /// CRI ListContainers, all states.
    pub fn list_containers(&self) -> Vec<cri::Container> {
        let mut c = self.runtime_client();
        let req = cri::ListContainersRequest { filter: None };
        self.call("CRI ListContainers", c.list_containers(req))
            .containers
    }

    /// CRI ListPodSandbox, all states.
    pub fn list_pods(&self) -> Vec<cri::PodSandbox> {
        let mut c = self.runtime_client();
        let req = cri::ListPodSandboxRequest { filter: None };
        self.call("CRI ListPodSandbox", c.list_pod_sandbox(req))
            .items
    }

    /// CRI StopPodSandbox: its containers are killed, the sandbox stays listed NOTREADY.
    pub fn stop_pod(&self, pod: &str) {
        let mut c = self.runtime_client();
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.to_owned(),
        };
        self.call("CRI StopPodSandbox", c.stop_pod_sandbox(req));
    }

    /// CRI RemovePodSandbox (stops it first if needed), with its containers.
    pub fn remove_pod(&self, pod: &str) {
        let mut c = self.runtime_client();
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.to_owned(),
        };
        self.call("CRI RemovePodSandbox", c.remove_pod_sandbox(req));
    }

    /// Teardown's graceful step: errors are ignored, the forceful step follows anyway.
    pub(super) async fn remove_all_pods(&self) {
        let Some(ch) = self.channel.clone() else {
            return;
        };
        let mut c = RuntimeClient::new(ch);
        let Ok(pods) = c
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
        else {
            return;
        };
        for pod in pods.into_inner().items {
            let _ = c
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: pod.id.clone(),
                })
                .await;
            let _ = c
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: pod.id,
                })
                .await;
        }
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

/// Host network needs no CNI; pid and ipc stay the pod's.
fn host_network() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Node.into(),
        ..Default::default()
    }
}
