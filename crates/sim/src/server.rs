//! HTTP: one hyper accept loop per DC, axum routes, the request log and fault injection.
//!
//! The accept loop is ours rather than `axum::serve` so that a fault can reset a connection:
//! each connection's socket is wrapped in [`KillableStream`], and a `Reset` fault fires its
//! [`Kill`] switch, which drops the connection with `SO_LINGER` 0 (the peer sees an RST).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower_service::Service;

use crate::fault::FaultKind;
use crate::log::LoggedRequest;
use crate::page;
use crate::zoho::{Reply, Zoho, normalize_user_code};

/// The simulated Zoho shared by every DC listener and the [`crate::Simulator`] handle.
pub(crate) struct Shared {
    zoho: Mutex<Zoho>,
}

impl Shared {
    pub(crate) fn new(zoho: Zoho) -> Self {
        Shared { zoho: Mutex::new(zoho) }
    }

    /// Runs `f` on the state. Never held across an `.await`.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Zoho) -> R) -> R {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a simulator; keep serving.
        let mut z = self.zoho.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut z)
    }
}

/// Router state: the shared Zoho and which DC this listener is.
#[derive(Clone)]
struct Dc {
    shared: Arc<Shared>,
    location: String,
}

/// Parameters decoded from the query string and a form body, in that order.
#[derive(Clone)]
struct Params(Arc<Vec<(String, String)>>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn json_reply(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body.to_string()).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    resp
}

fn router(dc: Dc) -> Router {
    Router::new()
        .route("/oauth/v3/device/code", post(device_code))
        .route("/oauth/v3/device/token", post(device_token))
        .route("/oauth/v3/device", get(approval_form).post(approval_submit))
        .route("/oauth/v3/device/setCode", get(approval_form))
        .route("/oauth/v2/token", post(refresh))
        .route("/oauth/v2/token/revoke", post(revoke))
        .route("/oauth/serverinfo", get(serverinfo))
        .route("/books/v3/{*rest}", any(books))
        .fallback(not_found)
        .with_state(dc)
}

async fn device_code(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    let now = Instant::now();
    json_reply(dc.shared.with(|z| z.device_code(&dc.location, &p.0, now)))
}

async fn device_token(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    let now = Instant::now();
    json_reply(dc.shared.with(|z| z.device_token(&dc.location, &p.0, now)))
}

async fn refresh(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    let now = Instant::now();
    json_reply(dc.shared.with(|z| z.refresh(&dc.location, &p.0, now)))
}

async fn revoke(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    json_reply(dc.shared.with(|z| z.revoke(&dc.location, &p.0)))
}

async fn serverinfo(State(dc): State<Dc>) -> Response {
    json_reply(dc.shared.with(|z| z.serverinfo()))
}

async fn books(
    State(dc): State<Dc>,
    Extension(p): Extension<Params>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64);
    let req = crate::books::BooksRequest {
        method: method.as_str(),
        rest: &rest,
        params: &p.0,
        authorization: header(AUTHORIZATION),
        content_type: header(CONTENT_TYPE).unwrap_or(""),
        body: &body,
        today,
    };
    let (busy, latency) = dc.shared.with(|z| (z.books_admit(), z.books_latency()));
    let r = match busy {
        Some(r) => r,
        None => {
            // Released even when the connection drops mid-wait (the future is then dropped).
            struct Release<'a>(&'a Dc);
            impl Drop for Release<'_> {
                fn drop(&mut self) {
                    self.0.shared.with(|z| z.books_release());
                }
            }
            let _release = Release(&dc);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            dc.shared.with(|z| z.books(&dc.location, &req, now))
        }
    };
    let mut resp = json_reply(r.reply);
    if let Some(s) = r.retry_after {
        resp.headers_mut().insert("retry-after", HeaderValue::from(s));
    }
    resp
}

async fn not_found() -> Response {
    json_reply(Reply {
        status: 404,
        body: serde_json::json!({ "code": 5, "message": "Invalid URL Passed" }),
    })
}

async fn approval_form(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    let code = p
        .get("devcode")
        .or_else(|| p.get("user_code"))
        .map(normalize_user_code)
        .unwrap_or_default();
    let html = dc.shared.with(|z| {
        let approver = z.default_approver();
        page::form(&dc.location, z.users(), approver.as_deref(), &code, None)
    });
    Html(html).into_response()
}

async fn approval_submit(State(dc): State<Dc>, Extension(p): Extension<Params>) -> Response {
    let now = Instant::now();
    let code = normalize_user_code(p.get("user_code").unwrap_or_default());
    let accept = p.get("action") != Some("deny");
    let (decided, user, html_on_error) = dc.shared.with(|z| {
        let user = p
            .get("user")
            .map(str::to_owned)
            .or_else(|| z.default_approver())
            .unwrap_or_default();
        let decided = if accept {
            z.approve(&code, &user, now)
        } else {
            z.deny(&code, now)
        };
        let approver = Some(user.as_str());
        let html = page::form(
            &dc.location,
            z.users(),
            approver,
            &code,
            Some(("That code is not valid, has expired, or was already used.", false)),
        );
        (decided, user, html)
    });
    if decided {
        Html(page::done(accept, &code, &user)).into_response()
    } else {
        (StatusCode::BAD_REQUEST, Html(html_on_error)).into_response()
    }
}

// ------------------------------------------------------------------------ connections

/// Fired by a `Reset` fault: end the connection now, with an RST.
#[derive(Default)]
struct Kill {
    fired: AtomicBool,
    notify: Notify,
}

impl Kill {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// A TCP stream that, when dropped after its [`Kill`] fired, is closed with a reset.
struct KillableStream {
    inner: TcpStream,
    kill: Arc<Kill>,
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        if self.kill.fired.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST instead of FIN. Failure only weakens it to a FIN.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts connections for one DC until the runtime is dropped.
pub(crate) async fn serve_dc(listener: TcpListener, shared: Arc<Shared>, location: String) {
    let dc = Dc { shared, location };
    let router = router(dc.clone());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let kill = Arc::new(Kill::default());
        let io = TokioIo::new(KillableStream {
            inner: stream,
            kill: kill.clone(),
        });
        let (dc, router) = (dc.clone(), router.clone());
        tokio::spawn(async move {
            let kill_for_service = kill.clone();
            let service = hyper::service::service_fn(move |req| {
                let (dc, router, kill) = (dc.clone(), router.clone(), kill_for_service.clone());
                async move { Ok::<_, Infallible>(handle(dc, router, kill, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
            tokio::select! {
                _ = conn => {}
                _ = kill.notify.notified() => {}
            }
        });
    }
}

fn decode(bytes: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// Reads the whole request, logs it, applies a fault or routes it.
async fn handle(dc: Dc, mut router: Router, kill: Arc<Kill>, req: Request<hyper::body::Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(Body::new(body), 1 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad request body").into_response(),
    };
    let now = Instant::now();
    let query = parts.uri.query().map(str::to_owned);
    let mut params: Vec<(String, String)> = query
        .as_deref()
        .map(|q| decode(q.as_bytes()).collect())
        .unwrap_or_default();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bytes.is_empty() && (content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded")) {
        params.extend(decode(&bytes));
    }
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = parts.uri.path().to_owned();
    let method = parts.method.as_str().to_owned();
    let (seq, fault) = dc.shared.with(|z| {
        let fault = z.take_fault(&path);
        let seq = z.log(LoggedRequest {
            seq: 0,
            method: method.clone(),
            path: path.clone(),
            query,
            params: params.clone(),
            headers,
            location: dc.location.clone(),
            at: now,
            elapsed: now.saturating_duration_since(z.start),
            fault,
            status: None,
        });
        (seq, fault)
    });
    // Paths and methods only: parameters may hold secrets.
    tracing::debug!(location = %dc.location, %method, %path, ?fault, "request");

    let faulted = match fault {
        None => None,
        Some(FaultKind::Reset) => {
            kill.fire();
            // The connection task drops this future together with the socket.
            return std::future::pending().await;
        }
        Some(FaultKind::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Some(FaultKind::Html { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some((status, Html(page::error_page(status.as_u16()))).into_response())
        }
        Some(FaultKind::Garbage) => Some(raw_json("<<<Zoho simulator: this is not JSON>>> \u{1}\u{2} }{ <html>")),
        Some(FaultKind::Truncated) => Some(raw_json(
            r#"{"access_token":"1000.4f1c0f7b3c9d","refresh_token":"1000.9b2e"#,
        )),
    };
    let response = match faulted {
        Some(r) => r,
        None => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(Params(Arc::new(params)));
            match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    let status = response.status().as_u16();
    dc.shared.with(|z| z.log_status(seq, status));
    response
}

fn raw_json(body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, Bytes::from_static(body.as_bytes())).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    resp
}
