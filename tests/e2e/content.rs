//! The content-store client (used by import and export) against a real containerd.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crimg::model::Descriptor;
use crimg::runtime::connect::connect_containerd;
use crimg::runtime::content::{VerifyError, Written};

use crate::support::{Node, digest};

fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn write_read_verify_and_leases() {
    let node = Node::start();
    let socket = node.socket().display().to_string();
    node.block_on(async {
        let c = connect_containerd(&[socket], "k8s.io", Duration::from_secs(10))
            .await
            .unwrap();
        let lease = c
            .create_lease("test", Duration::from_secs(600))
            .await
            .unwrap();
        let leased = c.with_lease(&lease).unwrap();

        // 10 MiB and a bit: several chunks, last one partial.
        let data = blob((10 << 20) + 12345, 1);
        let desc = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: digest(&data),
            size: data.len() as i64,
        };
        let labels = BTreeMap::from([("crimg.test".to_string(), "yes".to_string())]);
        let mut seen = 0u64;
        let w = leased
            .write_blob(&desc, &labels, &data[..], |n| seen += n)
            .await
            .unwrap();
        assert_eq!(w, Written::Committed);
        assert_eq!(seen, data.len() as u64);
        let info = c
            .content_info(&desc.digest)
            .await
            .unwrap()
            .expect("committed");
        assert_eq!(info.size, desc.size);
        assert_eq!(
            info.labels.get("crimg.test").map(String::as_str),
            Some("yes")
        );
        // Writing it again is no error.
        let again = leased
            .write_blob(&desc, &labels, &data[..], |_| {})
            .await
            .unwrap();
        assert!(matches!(again, Written::Committed | Written::AlreadyExists));

        // One streaming read gives the same bytes.
        let mut read = Vec::new();
        let mut stream = Box::pin(c.read_blob(&desc.digest).await.unwrap());
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert!(read == data, "read back differs");

        // Wrong digest, short and long sources: errors, nothing committed.
        let other = blob(3 << 20, 2);
        let lying = Descriptor {
            digest: digest(b"something else"),
            size: other.len() as i64,
            ..desc.clone()
        };
        let e = leased
            .write_blob(&lying, &labels, &other[..], |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<VerifyError>(),
                Some(VerifyError::Digest { .. })
            ),
            "{e:#}"
        );
        let short = Descriptor {
            digest: digest(&other),
            size: other.len() as i64 + 10,
            ..desc.clone()
        };
        let e = leased
            .write_blob(&short, &labels, &other[..], |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<VerifyError>(),
                Some(VerifyError::Size { .. })
            ),
            "{e:#}"
        );
        let long = Descriptor {
            digest: digest(&other),
            size: other.len() as i64 - 10,
            ..desc.clone()
        };
        let e = leased
            .write_blob(&long, &labels, &other[..], |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<VerifyError>(),
                Some(VerifyError::Size { .. })
            ),
            "{e:#}"
        );
        assert!(c.content_info(&digest(&other)).await.unwrap().is_none());

        // Label update and the missing-blob error.
        c.content_update_labels(&desc.digest, &BTreeMap::new(), &["crimg.test".to_string()])
            .await
            .unwrap();
        let info = c.content_info(&desc.digest).await.unwrap().unwrap();
        assert!(!info.labels.contains_key("crimg.test"));
        let missing = digest(b"absent");
        let e = match c.read_blob(&missing).await {
            Ok(_) => panic!("reading a missing blob succeeded"),
            Err(e) => e,
        };
        assert!(e.to_string().contains(&missing), "{e:#}");

        assert!(c.list_leases().await.unwrap().contains(&lease));
        c.delete_lease(&lease, false).await.unwrap();
        assert!(!c.list_leases().await.unwrap().contains(&lease));
    });
}
