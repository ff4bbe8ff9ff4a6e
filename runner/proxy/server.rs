//! The proxy's HTTP/1.1 server: plain HTTP forwarding, and CONNECT with TLS interception.
//!
//! Plain HTTP (`GET http://host/path`): the URI's host decides (the Host header is replaced
//! by it upstream, so a request can't name one host to the policy and another to a shared
//! front end), then the method, then the addresses the name resolves to.
//!
//! CONNECT (`CONNECT host:443`): the CONNECT target decides before any tunnel opens, and its
//! addresses are checked; a refusal is the CONNECT's own 403. An allowed tunnel is answered
//! 200 and terminated with a leaf certificate from the run's CA. Its TLS name (SNI) must be
//! the CONNECT target; every request inside must name that host too, and its method is
//! checked. Each is then sent over one verified TLS connection to the checked addresses, kept
//! for the tunnel's later requests.
//!
//! A refusal is HTTP 403 with `x-airlock-blocked` (see [`policy::Refusal::header`]) and the reason
//! in the body; an upstream failure is a 502 without that header, so the two can't be
//! confused. Every request ends as one line of the record, written when its response body
//! has gone (or was abandoned), with the bytes that went each way.

use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::LazyConfigAcceptor;

use super::ca::Ca;
use super::policy::{Host, Policy, Refusal};
use super::record::{self, Decision, Entry, Recorder};
use super::upstream::Upstream;
use super::{Config, Listen, ProxyError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// How long a client may take to send a request's headers, or a TLS handshake.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

struct Shared {
    policy: Policy,
    ca: Ca,
    upstream: Upstream,
    recorder: Recorder,
}

/// A proxy ready to serve: its CA made and its certificate written, its record open.
pub struct Proxy {
    shared: Arc<Shared>,
    ca_cert: PathBuf,
}

/// A bound listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// What it listens on (the port filled in when 0 was asked for).
    pub fn address(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|e| format!("? ({e})")),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

impl Proxy {
    pub fn new(config: Config) -> Result<Proxy, ProxyError> {
        let ca = Ca::generate()?;
        let ca_cert = ca.write_cert(&config.ca_dir)?;
        let upstream = Upstream::new(
            &config.upstream_ca,
            config.test_loopback,
            config.local_networks,
        )?;
        let recorder = Recorder::create(&config.record)?;
        Ok(Proxy {
            shared: Arc::new(Shared {
                policy: config.policy,
                ca,
                upstream,
                recorder,
            }),
            ca_cert,
        })
    }

    /// The run's CA certificate, as written.
    pub fn ca_cert(&self) -> &std::path::Path {
        &self.ca_cert
    }

    /// Listen on `listen`. A Unix socket left by an earlier proxy is replaced; any other file
    /// at that path is not.
    pub async fn bind(&self, listen: &Listen) -> Result<Listener, ProxyError> {
        let fail = |source| ProxyError::Listen {
            listen: listen.clone(),
            source,
        };
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await.map_err(fail)?)),
            Listen::Unix(path) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if !meta.file_type().is_socket() {
                        return Err(fail(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "a file that is not a socket is in the way",
                        )));
                    }
                    std::fs::remove_file(path).map_err(fail)?;
                }
                let l = UnixListener::bind(path).map_err(fail)?;
                // Any user may connect: the agent's user is the environment's, not ours; the
                // socket is reachable only where its folder is mounted.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                    .map_err(fail)?;
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// Serve connections until the process ends.
    pub async fn serve(self, listener: Listener) -> io::Result<()> {
        loop {
            match &listener {
                Listener::Tcp(l) => {
                    let (stream, _) = match l.accept().await {
                        Ok(s) => s,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(client(self.shared.clone(), stream));
                }
                Listener::Unix(l, _) => {
                    let (stream, _) = match l.accept().await {
                        Ok(s) => s,
                        Err(e) => {
                            accept_failed(e).await;
                            continue;
                        }
                    };
                    tokio::spawn(client(self.shared.clone(), stream));
                }
            }
        }
    }
}

/// Out of file descriptors and the like: say so and wait a little rather than spin.
async fn accept_failed(e: io::Error) {
    tracing::warn!("accept: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One client connection: HTTP/1.1, with upgrades for CONNECT.
async fn client<S>(shared: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(shared.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("client connection: {e}");
    }
}

/// What is known of a request before its decision, for its record line.
#[derive(Clone)]
struct Pending {
    time: String,
    started: Instant,
    method: String,
    scheme: &'static str,
    host: String,
    port: u16,
    path: Option<String>,
    query_len: usize,
}

impl Pending {
    fn new(method: &Method, scheme: &'static str, host: String, port: u16, uri: &Uri) -> Pending {
        let (path, query_len) = match (scheme, uri.path_and_query()) {
            ("connect", _) => (None, 0),
            (_, Some(pq)) => {
                let (p, q) = record::split_query(pq.as_str());
                (Some(p), q)
            }
            (_, None) => (Some("/".into()), 0),
        };
        Pending {
            time: record::now(),
            started: Instant::now(),
            method: method.as_str().to_string(),
            scheme,
            host,
            port,
            path,
            query_len,
        }
    }

    fn entry(&self, decision: Decision, status: Option<u16>) -> Entry {
        Entry {
            time: self.time.clone(),
            method: self.method.clone(),
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port,
            path: self.path.clone(),
            query_len: self.query_len,
            decision,
            rule: None,
            reason: None,
            status,
            bytes_up: 0,
            bytes_down: 0,
            detail: None,
            duration_ms: self.started.elapsed().as_millis() as u64,
        }
    }
}

/// Refuse: record it, and answer 403 with `x-airlock-blocked` and the reason in the body.
fn refuse(shared: &Shared, p: &Pending, refusal: &Refusal) -> Response<ProxyBody> {
    let mut entry = p.entry(Decision::Denied, Some(403));
    entry.reason = Some(refusal.reason().to_string());
    entry.detail = Some(refusal.to_string());
    shared.recorder.write(&entry);
    let body = format!(
        "airlock egress proxy: {} {}:{} refused: {refusal} ({}).\nThe environment's agent.network allowlist decides what the agent may reach; this is not the server's answer.\n",
        p.method,
        p.host,
        p.port,
        refusal.reason()
    );
    let mut resp = text(StatusCode::FORBIDDEN, body);
    resp.headers_mut().insert(
        HeaderName::from_static("x-airlock-blocked"),
        HeaderValue::from_static(refusal.header()),
    );
    resp
}

/// A request the proxy can't serve at all (not a proxy request, no host): 400, recorded.
fn bad_request(shared: &Shared, p: &Pending, why: &str) -> Response<ProxyBody> {
    let mut entry = p.entry(Decision::Denied, Some(400));
    entry.reason = Some("bad-request".into());
    entry.detail = Some(why.to_string());
    shared.recorder.write(&entry);
    text(
        StatusCode::BAD_REQUEST,
        format!("airlock egress proxy: {why}\n"),
    )
}

/// The upstream failed after the request was allowed: 502, no `x-airlock-blocked`.
fn upstream_failed(shared: &Shared, p: &Pending, rule: String, why: String) -> Response<ProxyBody> {
    let mut entry = p.entry(Decision::Allowed, Some(502));
    entry.rule = Some(rule);
    entry.detail = Some(why.clone());
    shared.recorder.write(&entry);
    text(
        StatusCode::BAD_GATEWAY,
        format!("airlock egress proxy: the request was allowed but the upstream failed: {why}\n"),
    )
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|e| match e {}).boxed()
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() == Method::CONNECT {
        return Ok(connect(shared, req).await);
    }
    Ok(plain(shared, req).await)
}

/// `GET http://host[:port]/path`.
async fn plain(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let uri = req.uri().clone();
    let authority = uri.authority().cloned();
    let port = authority.as_ref().and_then(|a| a.port_u16()).unwrap_or(80);
    let shown = authority
        .as_ref()
        .map(|a| a.host().to_string())
        .unwrap_or_default();
    let p = Pending::new(req.method(), "http", shown, port, &uri);
    if uri.scheme_str() != Some("http") || authority.is_none() {
        let why = if uri.scheme_str() == Some("https") {
            "send https:// requests through CONNECT (set HTTPS_PROXY), not as a plain request"
        } else {
            "this is a forward proxy: send requests through it with an absolute http:// URI (set HTTP_PROXY)"
        };
        return bad_request(&shared, &p, why);
    }
    let Some(host) = Host::parse(&p.host) else {
        return bad_request(
            &shared,
            &p,
            "the request's host is not a host name or IP address",
        );
    };
    let grant = match shared.policy.host(&host, port) {
        Ok(g) => g,
        Err(r) => return refuse(&shared, &p, &r),
    };
    if let Err(r) = grant.method(req.method().as_str()) {
        return refuse(&shared, &p, &r);
    }
    let (addrs, how) = match shared.upstream.resolve(&grant).await {
        Ok(found) => found,
        Err(why) => return upstream_failed(&shared, &p, grant.rule(), why),
    };
    if let Err(r) = grant.addresses(&addrs, how, &shared.upstream.local) {
        return refuse(&shared, &p, &r);
    }
    let rule = grant.rule();
    let tcp = match shared.upstream.tcp(&addrs, port).await {
        Ok(s) => s,
        Err(e) => return upstream_failed(&shared, &p, rule, e.to_string()),
    };
    let mut sender = match handshake(tcp).await {
        Ok(s) => s,
        Err(e) => return upstream_failed(&shared, &p, rule, e),
    };
    let host_header = authority
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    forward(&shared, &mut sender, req, &p, rule, &host_header).await
}

/// An HTTP/1.1 client connection over `io`, driven in its own task.
async fn handshake<T>(io: T) -> Result<SendRequest<ProxyBody>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection: {e}");
        }
    });
    Ok(sender)
}

/// Send an allowed request upstream and stream the answer back, recording it when its body
/// has gone.
async fn forward(
    shared: &Arc<Shared>,
    sender: &mut SendRequest<ProxyBody>,
    req: Request<Incoming>,
    p: &Pending,
    rule: String,
    host_header: &str,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let up = Arc::new(AtomicU64::new(0));
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return bad_request(shared, p, "the request's path is not valid"),
    };
    strip_hop_by_hop(&mut parts.headers);
    match HeaderValue::from_str(host_header) {
        Ok(v) => {
            parts.headers.insert(header::HOST, v);
        }
        Err(_) => return bad_request(shared, p, "the request's host is not valid"),
    }
    let body = Metered {
        inner: body,
        counter: up.clone(),
        end: None,
    };
    let upstream_req = Request::from_parts(parts, body.map_err(BoxError::from).boxed());
    if let Err(e) = sender.ready().await {
        return upstream_failed(shared, p, rule, e.to_string());
    }
    let resp = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => return upstream_failed(shared, p, rule, e.to_string()),
    };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let mut entry = p.entry(Decision::Allowed, Some(parts.status.as_u16()));
    entry.rule = Some(rule);
    let body = Metered {
        inner: body,
        counter: Arc::new(AtomicU64::new(0)),
        end: Some(End {
            shared: shared.clone(),
            entry,
            started: p.started,
            up,
        }),
    };
    Response::from_parts(parts, body.map_err(BoxError::from).boxed())
}

/// Headers that belong to one hop, not to the request: never forwarded either way.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// `CONNECT host:port`: decide on the target, then intercept.
async fn connect(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ProxyBody> {
    let uri = req.uri().clone();
    let authority = uri.authority().cloned();
    let port = authority.as_ref().and_then(|a| a.port_u16());
    let shown = authority
        .as_ref()
        .map(|a| a.host().to_string())
        .unwrap_or_default();
    let p = Pending::new(req.method(), "connect", shown, port.unwrap_or(0), &uri);
    let (Some(host), Some(port)) = (Host::parse(&p.host), port) else {
        return bad_request(&shared, &p, "CONNECT needs a target HOST:PORT");
    };
    let grant = match shared.policy.host(&host, port) {
        Ok(g) => g,
        Err(r) => return refuse(&shared, &p, &r),
    };
    let (addrs, how) = match shared.upstream.resolve(&grant).await {
        Ok(found) => found,
        Err(why) => return upstream_failed(&shared, &p, grant.rule(), why),
    };
    if let Err(r) = grant.addresses(&addrs, how, &shared.upstream.local) {
        return refuse(&shared, &p, &r);
    }
    let tunnel = Tunnel {
        host,
        port,
        addrs,
        sender: tokio::sync::Mutex::new(None),
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => intercept(shared, Arc::new(tunnel), upgraded, p).await,
            Err(e) => tracing::debug!("CONNECT upgrade: {e}"),
        }
    });
    Response::new(full(Bytes::new()))
}

/// An allowed CONNECT tunnel: the checked destination, and the upstream connection its
/// requests share once the first one opened it.
struct Tunnel {
    host: Host,
    port: u16,
    addrs: Vec<IpAddr>,
    sender: tokio::sync::Mutex<Option<SendRequest<ProxyBody>>>,
}

/// Terminate the agent's TLS with a leaf from the run's CA and serve the requests inside.
async fn intercept(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    upgraded: hyper::upgrade::Upgraded,
    p: Pending,
) {
    let failed = |why: String| {
        let mut entry = p.entry(Decision::Allowed, None);
        entry.detail = Some(why);
        shared.recorder.write(&entry);
    };
    let acceptor =
        LazyConfigAcceptor::new(rustls::server::Acceptor::default(), TokioIo::new(upgraded));
    let start = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(format!("not a TLS client hello: {e}")),
        Err(_) => return failed("no TLS client hello in time".into()),
    };
    let target = tunnel.host.to_string();
    let sni = start
        .client_hello()
        .server_name()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    // A different TLS name still gets a certificate for that name, so the agent reads a 403
    // that says why instead of a certificate error.
    let mismatch = sni
        .clone()
        .filter(|s| *s != target)
        .map(|sni| Refusal::SniMismatch {
            sni,
            connect: target.clone(),
        });
    let leaf_name = sni.unwrap_or_else(|| target.clone());
    let config = match shared.ca.server_config(&leaf_name) {
        Ok(c) => c,
        Err(e) => return failed(format!("no certificate for {leaf_name}: {e}")),
    };
    let tls = match tokio::time::timeout(CLIENT_TIMEOUT, start.into_stream(config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(format!("TLS handshake with the agent: {e}")),
        Err(_) => return failed("TLS handshake with the agent timed out".into()),
    };
    let mismatch = Arc::new(mismatch);
    let service = service_fn(move |req| {
        let (shared, tunnel, mismatch) = (shared.clone(), tunnel.clone(), mismatch.clone());
        async move { Ok::<_, Infallible>(inside(shared, tunnel, &mismatch, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    if let Err(e) = conn.await {
        tracing::debug!("intercepted connection: {e}");
    }
}

/// One request inside an intercepted tunnel.
async fn inside(
    shared: Arc<Shared>,
    tunnel: Arc<Tunnel>,
    mismatch: &Option<Refusal>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let p = Pending::new(
        req.method(),
        "https",
        tunnel.host.to_string(),
        tunnel.port,
        req.uri(),
    );
    if let Some(r) = mismatch {
        return refuse(&shared, &p, r);
    }
    let named = req.uri().host().map(str::to_string).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| {
                h.parse::<http::uri::Authority>()
                    .map(|a| a.host().to_string())
                    .unwrap_or_else(|_| h.to_string())
            })
    });
    if let Some(named) = named {
        if Host::parse(&named).as_ref() != Some(&tunnel.host) {
            let r = Refusal::HostMismatch {
                host: named,
                connect: tunnel.host.to_string(),
            };
            return refuse(&shared, &p, &r);
        }
    }
    let grant = match shared.policy.host(&tunnel.host, tunnel.port) {
        Ok(g) => g,
        Err(r) => return refuse(&shared, &p, &r),
    };
    if let Err(r) = grant.method(req.method().as_str()) {
        return refuse(&shared, &p, &r);
    }
    let rule = grant.rule();
    let mut sender = tunnel.sender.lock().await;
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = match open_tls(&shared, &tunnel).await {
            Ok(s) => Some(s),
            Err(e) => return upstream_failed(&shared, &p, rule, e),
        };
    }
    let host_header = match (&tunnel.host, tunnel.port) {
        (Host::Ip(IpAddr::V6(ip)), 443) => format!("[{ip}]"),
        (Host::Ip(IpAddr::V6(ip)), port) => format!("[{ip}]:{port}"),
        (host, 443) => host.to_string(),
        (host, port) => format!("{host}:{port}"),
    };
    let sender = sender.as_mut().expect("opened above");
    forward(&shared, sender, req, &p, rule, &host_header).await
}

async fn open_tls(shared: &Shared, tunnel: &Tunnel) -> Result<SendRequest<ProxyBody>, String> {
    let tcp = shared
        .upstream
        .tcp(&tunnel.addrs, tunnel.port)
        .await
        .map_err(|e| e.to_string())?;
    let tls = shared
        .upstream
        .tls(tcp, &tunnel.host)
        .await
        .map_err(|e| format!("TLS to {}: {e}", tunnel.host))?;
    handshake(tls).await
}

/// The end of a response: its record line, written when the body is done or dropped.
struct End {
    shared: Arc<Shared>,
    entry: Entry,
    started: Instant,
    up: Arc<AtomicU64>,
}

/// A body that counts the bytes through it; with an [`End`], it records the request when
/// dropped.
struct Metered<B> {
    inner: B,
    counter: Arc<AtomicU64>,
    end: Option<End>,
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        if let Some(mut end) = self.end.take() {
            end.entry.bytes_down = self.counter.load(Ordering::Relaxed);
            end.entry.bytes_up = end.up.load(Ordering::Relaxed);
            end.entry.duration_ms = end.started.elapsed().as_millis() as u64;
            end.shared.recorder.write(&end.entry);
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(end) = &mut this.end {
                    end.entry.detail = Some(format!("the upstream's body failed: {e}"));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
