//! In-process smoke tests of `serve`: raw HTTP/1.1 over a loopback socket.

use sr_test_registry::{ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(options: ServeOptions) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, options));
    addr
}

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    extra: &str,
) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn register_then_read_back() {
    let addr = start(ServeOptions::default()).await;
    let body = r#"{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}"#;
    let reply = call(addr, "POST", "/subjects/s/versions", body, "").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("application/vnd.schemaregistry.v1+json"),
        "{reply}"
    );
    assert!(reply.contains(r#""id":1"#), "{reply}");
    let reply = call(addr, "GET", "/subjects/s/versions/latest", "", "").await;
    assert!(
        reply.contains(r#""subject":"s""#) && !reply.contains("schemaType"),
        "{reply}"
    );
    let reply = call(addr, "GET", "/subjects/missing/versions", "", "").await;
    assert!(
        reply.starts_with("HTTP/1.1 404") && reply.contains("40401"),
        "{reply}"
    );
    let reply = call(addr, "GET", "/no/such/route", "", "").await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    let reply = call(addr, "POST", "/subjects/s/versions", "{oops", "").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn basic_and_bearer_auth() {
    let addr = start(ServeOptions {
        basic_auth: Some(("u".into(), "p".into())),
        bearer_token: Some("tok".into()),
        ..Default::default()
    })
    .await;
    let reply = call(addr, "GET", "/subjects", "", "").await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm="),
        "{reply}"
    );
    assert!(
        reply.contains(r#"{"error_code":401,"message":"Unauthorized"}"#),
        "{reply}"
    );
    // base64("u:p") = "dTpw"
    let reply = call(
        addr,
        "GET",
        "/subjects",
        "",
        "Authorization: Basic dTpw\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = call(
        addr,
        "GET",
        "/subjects",
        "",
        "Authorization: Bearer tok\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = call(
        addr,
        "GET",
        "/subjects",
        "",
        "Authorization: Bearer nope\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
}
