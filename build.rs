//! Compiles the CRI and containerd API subset in `proto/` with protox, so no system
//! `protoc` is needed, and generates tonic clients for it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/cri/runtime/v1/api.proto",
        "proto/containerd/types/descriptor.proto",
        "proto/containerd/types/mount.proto",
        "proto/containerd/services/images/v1/images.proto",
        "proto/containerd/services/content/v1/content.proto",
        "proto/containerd/services/leases/v1/leases.proto",
        "proto/containerd/services/snapshots/v1/snapshots.proto",
        "proto/containerd/services/diff/v1/diff.proto",
        "proto/containerd/services/containers/v1/containers.proto",
        "proto/containerd/services/version/v1/version.proto",
        "proto/containerd/services/events/v1/events.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
