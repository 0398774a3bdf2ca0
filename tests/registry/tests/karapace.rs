//! The Karapace 3.16 dialect over HTTP: routes, body checks and response shapes (the
//! expected answers are what a running Karapace 3.16.0 gave for the same requests).

use serde_json::{Value, json};
use sr_test_registry::{Dialect, ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        listener,
        ServeOptions {
            dialect: Dialect::Karapace316,
            ..Default::default()
        },
    ));
    addr
}

/// One exchange: status, content type, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

async fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<Value>) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let status = head[9..12].parse().expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: body.to_owned(),
    }
}

const V1: &str = r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}"#;

#[tokio::test]
async fn routes_karapace_lacks_answer_as_aiohttp_does() {
    let addr = start().await;
    for (method, path) in [
        ("PUT", "/mode"),
        ("DELETE", "/mode"),
        ("PUT", "/mode/s"),
        ("DELETE", "/mode/s"),
        ("DELETE", "/config"),
    ] {
        let r = call(addr, method, path, Some(json!({"mode": "IMPORT"}))).await;
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_str()),
            (405, "text/plain; charset=utf-8", "405: Method Not Allowed"),
            "{method} {path}"
        );
    }
    for (method, path) in [
        ("GET", "/contexts"),
        ("GET", "/v1/metadata/version"),
        ("POST", "/compatibility/subjects/s/versions"),
    ] {
        let r = call(addr, method, path, None).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "404: Not Found"),
            "{method} {path}"
        );
    }
    for path in ["/schemas/ids/1/subjects", "/schemas/ids/1/schema"] {
        let r = call(addr, "GET", path, None).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json(),
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        );
    }
    let r = call(addr, "GET", "/schemas/types", None).await;
    assert_eq!(r.json(), json!(["JSON", "AVRO", "PROTOBUF"]));
}

#[tokio::test]
async fn registration_answers_the_id_only_and_refuses_what_karapace_refuses() {
    let addr = start().await;
    let r = call(
        addr,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!({"id": 1})));
    let r = call(addr, "GET", "/subjects/s/versions/1", None).await;
    assert_eq!(
        r.json(),
        json!({"subject": "s", "version": 1, "id": 1,
               "schema": r#"{"fields":[{"name":"a","type":"int"}],"name":"R","type":"record"}"#})
    );
    let refusals = [
        (
            json!({"schema": V1, "id": 1, "version": 1}),
            422,
            json!({"error_code": 422, "message": "Unrecognized field: id"}),
        ),
        (
            json!({"schema": V1, "schemaType": "XML"}),
            422,
            json!({"error_code": 422, "message": "Invalid schemaType XML"}),
        ),
        (
            json!({"schema": V1, "references": [{"name": "x", "subject": "s", "version": 1}]}),
            422,
            json!({"error_code": 44302,
                   "message": "Schema references are not supported for 'AVRO' schema type"}),
        ),
        (
            json!({"schemaType": "AVRO"}),
            422,
            json!({"error_code": 42201, "message": "Empty schema"}),
        ),
    ];
    for (body, status, expected) in refusals {
        let r = call(addr, "POST", "/subjects/s/versions", Some(body.clone())).await;
        assert_eq!((r.status, r.json()), (status, expected), "{body}");
    }
    // incompatible: 409 with error_code 409
    let string_a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    let r = call(
        addr,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": string_a})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (409, json!(409))
    );
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Incompatible schema, compatibility_mode=BACKWARD "),
        "{message}"
    );
    // lookup: no references, also refuses unknown fields
    let r = call(addr, "POST", "/subjects/s", Some(json!({"schema": V1}))).await;
    assert_eq!(
        r.json(),
        json!({"subject": "s", "version": 1, "id": 1,
               "schema": r#"{"fields":[{"name":"a","type":"int"}],"name":"R","type":"record"}"#})
    );
    let r = call(
        addr,
        "POST",
        "/subjects/s",
        Some(json!({"schema": V1, "version": 1})),
    )
    .await;
    assert_eq!(r.json()["error_code"], json!(422));
}

#[tokio::test]
async fn config_and_mode_follow_karapace() {
    let addr = start().await;
    let r = call(addr, "GET", "/config/ghost", None).await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (404, json!(40401))
    );
    let r = call(addr, "GET", "/mode/ghost", None).await;
    assert_eq!(
        (r.status, r.json()["error_code"].clone()),
        (404, json!(40401))
    );
    let r = call(
        addr,
        "PUT",
        "/config/ghost",
        Some(json!({"compatibilityLevel": "NONE"})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            422,
            json!({"error_code": 42203, "message": "Invalid compatibility level"})
        )
    );
    let r = call(
        addr,
        "PUT",
        "/config/ghost",
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(r.json(), json!({"compatibility": "NONE"}));
    let r = call(addr, "GET", "/mode/ghost", None).await;
    assert_eq!(r.json(), json!({"mode": "READWRITE"}));
    let r = call(addr, "DELETE", "/config/ghost", None).await;
    assert_eq!(r.json(), json!({"compatibility": "BACKWARD"}));
    let r = call(addr, "GET", "/config/ghost", None).await;
    assert_eq!(r.json()["error_code"], json!(40408));
    let r = call(addr, "GET", "/subjects?deleted=true", None).await;
    assert_eq!(r.json(), json!(["ghost"]));
}

#[tokio::test]
async fn bulk_listing_inverts_deleted_and_always_names_the_type() {
    let addr = start().await;
    call(
        addr,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": V1})),
    )
    .await;
    let v2 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#;
    call(
        addr,
        "POST",
        "/subjects/s/versions",
        Some(json!({"schema": v2})),
    )
    .await;
    call(addr, "DELETE", "/subjects/s/versions/1", None).await;
    let listed = |v: Value| -> Vec<(i64, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["version"].as_i64().unwrap(),
                    e["schemaType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let all = call(addr, "GET", "/schemas?subjectPrefix=zzz&limit=1", None).await;
    assert_eq!(
        listed(all.json()),
        vec![(1, "AVRO".into()), (2, "AVRO".into())]
    );
    let live = call(addr, "GET", "/schemas?deleted=true", None).await;
    assert_eq!(listed(live.json()), vec![(2, "AVRO".into())]);
    let r = call(addr, "GET", "/schemas/ids/77/versions", None).await;
    assert_eq!((r.status, r.json()), (200, json!([])));
    let r = call(
        addr,
        "POST",
        "/compatibility/subjects/nope/versions/latest",
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"error_code": 40402, "message": "Version latest not found."})
    );
    let r = call(
        addr,
        "POST",
        "/compatibility/subjects/s/versions/latest?verbose=true",
        Some(json!({"schema": v2})),
    )
    .await;
    assert_eq!(r.json(), json!({"is_compatible": true}));
}
