//! A fault-injecting HTTP proxy for the fault matrix (issue 9): it listens on
//! `127.0.0.1:0`, forwards every request to the real registry, and, as the
//! test switches faults on and off while the real binary runs, answers
//! 500/503/429 itself, delays answers past the client's timeout, closes
//! connections without answering, rewrites requests and answers, or runs
//! side requests (a registration between two pages) before forwarding.
//!
//! It runs on its own thread and Tokio runtime, so a test may block on the
//! binary (`Command::output`) while the proxy serves it. One request per
//! connection (`Connection: close`), so a dropped connection is always a
//! failed request the client sees, never a pooled one it silently retries.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as it passed through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, as sent (`/schemas?offset=0&limit=5`).
    pub target: String,
    /// The body, empty for none.
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        match self.target.split_once('?') {
            Some((_, q)) => url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// The same request with the query given (other parameters dropped).
    pub fn set_query(&mut self, query: &[(String, String)]) {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            s.append_pair(k, v);
        }
        let q = s.finish();
        let path = self.path().to_owned();
        self.target = if q.is_empty() {
            path
        } else {
            format!("{path}?{q}")
        };
    }
}

/// What a fault does to a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answers this status itself (500, 503: a Confluent error body with
    /// `error_code` 50001; 429: with `Retry-After: 1`).
    Status(u16),
    /// Forwards after this delay (longer than the client's timeout: a timeout).
    Delay(Duration),
    /// Closes the connection without answering (the registry never sees it).
    Drop,
    /// Forwards, then closes the connection without passing the answer on:
    /// the registry did it, the client cannot know.
    DropAnswer,
}

/// When a fault applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The next `n` matching requests.
    Next(u32),
    /// Every matching request until this instant.
    Until(Instant),
}

/// A fault: an action on the requests that match a method and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub action: Action,
    /// For how long.
    pub span: Span,
    /// Only this method (`None`: any).
    pub method: Option<String>,
    /// Only paths starting so (`None`: any).
    pub path_prefix: Option<String>,
}

impl Fault {
    /// `action` on every request for the next `n` requests.
    pub fn next(action: Action, n: u32) -> Self {
        Self {
            action,
            span: Span::Next(n),
            method: None,
            path_prefix: None,
        }
    }

    /// `action` on every request during `window` from now.
    pub fn window(action: Action, window: Duration) -> Self {
        Self {
            action,
            span: Span::Until(Instant::now() + window),
            method: None,
            path_prefix: None,
        }
    }

    /// Only requests with this method and a path starting with `prefix`.
    pub fn only(mut self, method: &str, prefix: &str) -> Self {
        self.method = Some(method.to_owned());
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    fn matches(&self, r: &Request) -> bool {
        self.method.as_deref().is_none_or(|m| m == r.method)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| r.path().starts_with(p))
    }
}

/// Changes a request before it is forwarded; the requests it returns are
/// sent to the registry first (side effects, such as a registration).
pub type RequestHook = Arc<dyn Fn(&mut Request) -> Vec<Request> + Send + Sync>;
/// Changes the body of a registry answer (the request, the status, the body).
pub type ResponseHook = Arc<dyn Fn(&Request, u16, Vec<u8>) -> Vec<u8> + Send + Sync>;

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    on_request: Option<RequestHook>,
    on_response: Option<ResponseHook>,
    log: Vec<(Request, String)>,
}

/// The proxy; stopped when dropped.
pub struct HttpProxy {
    /// `http://127.0.0.1:<port>`: what the binary is told the registry is.
    pub url: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let (state, http, upstream) = (shared.clone(), http.clone(), upstream.clone());
                            tokio::spawn(async move {
                                let _ = serve(socket, state, http, upstream).await;
                            });
                        }
                    }
                }
            });
        });
        let addr = rx.recv().expect("the proxy starts");
        Self {
            url: format!("http://{addr}"),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Adds a fault (faults are tried in the order added; the first live
    /// one that matches acts).
    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Sets the request hook.
    pub fn on_request(&self, hook: impl Fn(&mut Request) -> Vec<Request> + Send + Sync + 'static) {
        self.state.lock().unwrap().on_request = Some(Arc::new(hook));
    }

    /// Sets the answer hook.
    pub fn on_response(
        &self,
        hook: impl Fn(&Request, u16, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().on_response = Some(Arc::new(hook));
    }

    /// Every request seen so far (after the request hook), with what
    /// happened to it: `forwarded 200`, `answered 503`, `dropped`, ...
    pub fn log(&self) -> Vec<(Request, String)> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many requests came in.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The live fault matching `r`, counting it down.
fn take_fault(state: &Mutex<State>, r: &Request) -> Option<Action> {
    let mut s = state.lock().unwrap();
    let now = Instant::now();
    s.faults.retain(|f| match f.span {
        Span::Next(n) => n > 0,
        Span::Until(t) => now < t,
    });
    let fault = s.faults.iter_mut().find(|f| f.matches(r))?;
    if let Span::Next(n) = &mut fault.span {
        *n -= 1;
    }
    Some(fault.action.clone())
}

fn note(state: &Mutex<State>, r: &Request, what: String) {
    state.lock().unwrap().log.push((r.clone(), what));
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes.
async fn read_request(
    socket: &mut TcpStream,
) -> std::io::Result<Option<(Request, Vec<(String, String)>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some((
        Request {
            method,
            target,
            body,
        },
        headers,
    )))
}

async fn respond(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    r: &Request,
    headers: &[(String, String)],
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), reqwest::Error> {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = http.request(method, format!("{upstream}{}", r.target));
    for (k, v) in headers {
        if !matches!(
            k.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding"
        ) {
            request = request.header(k, v);
        }
    }
    if !r.body.is_empty() {
        request = request.body(r.body.clone());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    // every header but the connection's own (an S3 client needs `etag`,
    // `last-modified` and the `x-amz-*` ones)
    let kept: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "connection" | "content-length" | "transfer-encoding" | "keep-alive"
            )
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.bytes().await?.to_vec();
    Ok((status, kept, body))
}

async fn serve(
    mut socket: TcpStream,
    state: Arc<Mutex<State>>,
    http: reqwest::Client,
    upstream: String,
) -> std::io::Result<()> {
    let Some((mut r, headers)) = read_request(&mut socket).await? else {
        return Ok(());
    };
    let hook = state.lock().unwrap().on_request.clone();
    let side = hook.map(|h| h(&mut r)).unwrap_or_default();
    for s in &side {
        let json = [("content-type".to_owned(), "application/json".to_owned())];
        let _ = forward(&http, &upstream, s, &json).await;
    }
    match take_fault(&state, &r) {
        Some(Action::Drop) => {
            note(&state, &r, "dropped".into());
            return Ok(()); // the socket closes unanswered
        }
        Some(Action::Status(status)) => {
            note(&state, &r, format!("answered {status}"));
            let body = serde_json::json!({
                "error_code": if status == 429 { 42901 } else { 50001 },
                "message": format!("injected fault: {status}"),
            })
            .to_string();
            let mut h = vec![(
                "content-type".to_owned(),
                "application/vnd.schemaregistry.v1+json".to_owned(),
            )];
            if status == 429 {
                h.push(("retry-after".into(), "1".into()));
            }
            return respond(&mut socket, status, &h, body.as_bytes()).await;
        }
        Some(Action::DropAnswer) => {
            let sent = forward(&http, &upstream, &r, &headers).await;
            let status = sent.map(|(status, _, _)| status.to_string());
            note(
                &state,
                &r,
                format!(
                    "answer dropped ({})",
                    status.unwrap_or_else(|e| e.to_string())
                ),
            );
            return Ok(());
        }
        Some(Action::Delay(d)) => {
            note(&state, &r, format!("delayed {d:?}"));
            tokio::time::sleep(d).await;
        }
        None => note(&state, &r, "forwarded".into()),
    }
    match forward(&http, &upstream, &r, &headers).await {
        Ok((status, h, body)) => {
            let hook = state.lock().unwrap().on_response.clone();
            let body = match hook {
                Some(h) => h(&r, status, body),
                None => body,
            };
            respond(&mut socket, status, &h, &body).await
        }
        Err(e) => {
            let body = format!("proxy: upstream failed: {e}");
            respond(&mut socket, 502, &[], body.as_bytes()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny upstream answering `200 {"path": ...}` to everything.
    fn echo_upstream() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                let body = serde_json::json!({ "target": target }).to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    fn get(url: &str) -> Result<(u16, Option<String>, String), reqwest::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let response = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .build()?
                .get(url)
                .send()
                .await?;
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((status, retry, response.text().await?))
        })
    }

    #[test]
    fn forwards_and_injects_each_fault_for_its_span() {
        let proxy = HttpProxy::start(&echo_upstream());
        let (status, _, body) = get(&format!("{}/subjects", proxy.url)).unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"target":"/subjects"}"#));

        proxy.inject(Fault::next(Action::Status(503), 2).only("GET", "/schemas"));
        // other paths are untouched
        assert_eq!(get(&format!("{}/subjects", proxy.url)).unwrap().0, 200);
        for _ in 0..2 {
            let (status, _, body) = get(&format!("{}/schemas?offset=0", proxy.url)).unwrap();
            assert_eq!(status, 503);
            assert!(body.contains("\"error_code\":50001"), "{body}");
        }
        assert_eq!(get(&format!("{}/schemas", proxy.url)).unwrap().0, 200);

        proxy.inject(Fault::next(Action::Status(429), 1));
        let (status, retry, _) = get(&format!("{}/x", proxy.url)).unwrap();
        assert_eq!((status, retry.as_deref()), (429, Some("1")));

        proxy.inject(Fault::next(Action::Drop, 1));
        assert!(get(&format!("{}/x", proxy.url)).is_err());
        assert_eq!(get(&format!("{}/x", proxy.url)).unwrap().0, 200);

        proxy.inject(Fault::next(Action::DropAnswer, 1));
        assert!(get(&format!("{}/x", proxy.url)).is_err());

        proxy.inject(Fault::next(Action::Delay(Duration::from_secs(2)), 1));
        assert!(get(&format!("{}/x", proxy.url)).unwrap_err().is_timeout());

        proxy.inject(Fault::window(
            Action::Status(500),
            Duration::from_millis(300),
        ));
        assert_eq!(get(&format!("{}/x", proxy.url)).unwrap().0, 500);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(get(&format!("{}/x", proxy.url)).unwrap().0, 200);

        let log = proxy.log();
        assert_eq!(log.len(), 12);
        assert_eq!(log[2].1, "answered 503");
        assert_eq!(log[6].1, "dropped");
        assert_eq!(log[8].1, "answer dropped (200)");
    }

    #[test]
    fn hooks_rewrite_requests_and_answers() {
        let proxy = HttpProxy::start(&echo_upstream());
        proxy.on_request(|r| {
            let q: Vec<(String, String)> = r
                .query()
                .into_iter()
                .filter(|(k, _)| k != "offset")
                .collect();
            r.set_query(&q);
            Vec::new()
        });
        proxy.on_response(|r, status, body| {
            assert_eq!(status, 200);
            let mut text = String::from_utf8(body).unwrap();
            text.push_str(&format!(" {}", r.method));
            text.into_bytes()
        });
        let (_, _, body) = get(&format!("{}/schemas?offset=5&limit=3", proxy.url)).unwrap();
        assert_eq!(body, r#"{"target":"/schemas?limit=3"} GET"#);
    }
}
