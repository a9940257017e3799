//! Faults during work: containerd killed or restarted, a full disk, a socket without permission.
