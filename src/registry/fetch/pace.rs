//! How slow a download may be: the minimum rate, the lease sized from it, and bodies
//! read under it or under a size limit.

use std::time::Duration;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};

use super::transport::cause;

/// A blob download must bring at least `MIN_RATE` bytes a second, measured over each
/// `RATE_WINDOW`; a server that drips bytes slower is given up on (and the next endpoint
/// tried), so a fetch cannot hang forever. The fetch lease is sized from the same figures.
pub(crate) const MIN_RATE: u64 = 10 << 10;
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(30);

/// How long a lease must hold what a fetch of blobs of `sizes` bytes stores: the time the
/// slowest accepted download takes ([`MIN_RATE`]), plus five minutes a blob for
/// connecting, tokens, redirects and endpoints that fail, plus an hour to finish the
/// export.
pub(crate) fn lease_for(sizes: impl IntoIterator<Item = u64>) -> Duration {
    sizes
        .into_iter()
        .fold(Duration::from_secs(3600), |d, size| {
            d + Duration::from_secs(size / MIN_RATE + 300)
        })
}

/// Checks a download's pace: each `window` must bring at least `min_rate` bytes a
/// second. Time is passed in, so the rule is testable without waiting.
#[derive(Debug)]
pub(crate) struct Pace {
    min_rate: u64,
    window: Duration,
    window_end: Duration,
    in_window: u64,
}

impl Pace {
    pub(crate) fn new(min_rate: u64, window: Duration) -> Pace {
        Pace {
            min_rate,
            window,
            window_end: window,
            in_window: 0,
        }
    }

    /// When the current window ends, counted from the start of the download.
    pub(crate) fn window_end(&self) -> Duration {
        self.window_end
    }

    /// Records `bytes` arriving at `elapsed` (0 when a window ends with nothing new).
    pub(crate) fn record(&mut self, elapsed: Duration, bytes: u64) -> Result<(), String> {
        if elapsed >= self.window_end {
            let want = self.min_rate * self.window.as_secs().max(1);
            // Bytes arriving just now count for the window that ends; a whole window
            // after it without a check had nothing.
            if self.in_window + bytes < want || elapsed >= self.window_end + self.window {
                return Err(format!(
                    "too slow: {} bytes in {}s, below the minimum of {} KiB/s",
                    self.in_window + bytes,
                    self.window.as_secs(),
                    self.min_rate >> 10
                ));
            }
            while self.window_end <= elapsed {
                self.window_end += self.window;
            }
            self.in_window = 0;
            return Ok(());
        }
        self.in_window += bytes;
        Ok(())
    }
}

/// A response body as a byte stream that fails when the server is slower than
/// [`MIN_RATE`] over a [`RATE_WINDOW`].
pub(super) fn at_least_min_rate(
    resp: reqwest::Response,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> {
    let start = tokio::time::Instant::now();
    let body = Box::pin(resp.bytes_stream());
    let state = (body, Pace::new(MIN_RATE, RATE_WINDOW), false);
    Box::pin(futures::stream::unfold(
        state,
        move |(mut body, mut pace, done)| async move {
            if done {
                return None;
            }
            loop {
                let deadline = start + pace.window_end();
                let next = tokio::time::timeout_at(deadline, body.next()).await;
                let (bytes, item) = match next {
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        let err = std::io::Error::other(cause(&e));
                        return Some((Err(err), (body, pace, true)));
                    }
                    Ok(Some(Ok(chunk))) => (chunk.len() as u64, Some(chunk)),
                    Err(_) => (0, None),
                };
                if let Err(e) = pace.record(start.elapsed(), bytes) {
                    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, e);
                    return Some((Err(err), (body, pace, true)));
                }
                if let Some(chunk) = item {
                    return Some((Ok(chunk), (body, pace, false)));
                }
            }
        },
    ))
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
pub(super) async fn read_bounded(resp: reqwest::Response, limit: i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| cause(&e))? {
        out.extend_from_slice(&chunk);
        if out.len() as i64 > limit.max(0) {
            return Err(format!("sent more than the expected {limit} bytes"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_sizes() {
        let h = Duration::from_secs(3600);
        assert_eq!(lease_for([]), h);
        assert_eq!(lease_for([0]), h + Duration::from_secs(300));
        // 1 GiB at 10 KiB/s: 104857 s, about 29 h.
        assert_eq!(
            lease_for([1 << 30, 10 << 10]),
            h + Duration::from_secs(104_857 + 300 + 1 + 300)
        );
    }

    #[test]
    fn pace() {
        let s = Duration::from_secs;
        // 10 KiB/s over 30 s windows: 300 KiB per window.
        let mut p = Pace::new(10 << 10, s(30));
        assert_eq!(p.window_end(), s(30));
        assert!(p.record(s(1), 200 << 10).is_ok());
        assert!(p.record(s(29), 100 << 10).is_ok());
        // The window closes with enough: the next one starts empty.
        assert!(p.record(s(30), 0).is_ok());
        assert_eq!(p.window_end(), s(60));
        assert!(p.record(s(40), 299 << 10).is_ok());
        let e = p.record(s(60), 0).unwrap_err();
        assert!(e.contains("below the minimum of 10 KiB/s"), "{e}");

        // A burst arriving as the window ends still counts for it.
        let mut p = Pace::new(10 << 10, s(30));
        assert!(p.record(s(31), 300 << 10).is_ok());
        assert_eq!(p.window_end(), s(60));
        // A long silence spanning windows fails at the first check after it.
        let mut p = Pace::new(10 << 10, s(30));
        assert!(p.record(s(5), 1 << 20).is_ok());
        assert!(p.record(s(95), 1).is_err());
        // A drip of one byte a second never passes a window.
        let mut p = Pace::new(10 << 10, s(30));
        let failed = (1..=30).map(|t| p.record(s(t), 1)).any(|r| r.is_err());
        assert!(failed);
    }
}
