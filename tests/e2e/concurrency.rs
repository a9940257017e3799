//! Concurrent use: two prunes, a prune during an import, a pod starting during a prune.
