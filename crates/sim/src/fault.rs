//! Injected faults: what a flaky network or an overloaded Zoho does to a request.

use std::fmt;
use std::str::FromStr;

/// What happens to a request that a [`Fault`] catches.
///
/// Except for [`FaultKind::Delay`], a faulted request never reaches the simulated Zoho: no code is
/// consumed and no token is minted, so repeating the request is safe (as it is with real 5xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// An HTML error page with this status (e.g. 503), as a proxy or load balancer sends it.
    Html {
        /// HTTP status code, normally 5xx.
        status: u16,
    },
    /// The TCP connection is closed with a reset (`SO_LINGER` 0) after the request was read,
    /// without any response bytes.
    Reset,
    /// Wait this many milliseconds, then answer normally.
    Delay {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// HTTP 200 with `Content-Type: application/json` and a body that is not JSON.
    Garbage,
    /// HTTP 200 with `Content-Type: application/json` and a JSON object cut off half way.
    Truncated,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Html { status } => write!(f, "html{status}"),
            FaultKind::Reset => f.write_str("reset"),
            FaultKind::Delay { ms } => write!(f, "delay{ms}"),
            FaultKind::Garbage => f.write_str("garbage"),
            FaultKind::Truncated => f.write_str("truncated"),
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;

    /// `html503` (any status), `reset`, `delay1500` (ms), `garbage`, `truncated`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("unknown fault kind {s:?} (html503, reset, delay1500, garbage, truncated)");
        match s {
            "reset" => Ok(FaultKind::Reset),
            "garbage" => Ok(FaultKind::Garbage),
            "truncated" => Ok(FaultKind::Truncated),
            _ => {
                if let Some(n) = s.strip_prefix("html") {
                    let status: u16 = n.parse().map_err(|_| bad())?;
                    if !(100..=999).contains(&status) {
                        return Err(bad());
                    }
                    Ok(FaultKind::Html { status })
                } else if let Some(n) = s.strip_prefix("delay") {
                    Ok(FaultKind::Delay {
                        ms: n.trim_end_matches("ms").parse().map_err(|_| bad())?,
                    })
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// A fault armed for the next `count` requests to `path` (on any DC listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exact request path without query, e.g. `/oauth/v3/device/token`; `*` matches every path.
    pub path: String,
    /// What to do to a caught request.
    pub kind: FaultKind,
    /// How many requests to catch; the fault disarms itself after that.
    pub count: u32,
}

impl Fault {
    /// A fault for the next `count` requests to `path`.
    pub fn new(path: &str, kind: FaultKind, count: u32) -> Self {
        Fault {
            path: path.to_owned(),
            kind,
            count,
        }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        self.count > 0 && (self.path == "*" || self.path == path)
    }
}

impl FromStr for Fault {
    type Err = String;

    /// `PATH:KIND[:COUNT]`, e.g. `/oauth/v3/device/token:html503:2`; COUNT defaults to 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (path, kind, count) = match parts.as_slice() {
            [p, k] => (*p, *k, 1),
            [p, k, c] => (
                *p,
                *k,
                c.parse::<u32>()
                    .map_err(|_| format!("bad fault count {c:?} in {s:?}"))?,
            ),
            _ => return Err(format!("fault {s:?} is not PATH:KIND[:COUNT]")),
        };
        if path != "*" && !path.starts_with('/') {
            return Err(format!("fault path {path:?} must start with / (or be *)"));
        }
        Ok(Fault::new(path, kind.parse()?, count))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.kind, self.count)
    }
}
