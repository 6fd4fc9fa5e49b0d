//! Every error the API answers has one shape, `{"error", "message", "field"?, "rule"?}` as
//! JSON (with `original`, the receipt a reused idempotency key names, for
//! `idempotency_conflict` only), whatever refused the request: a handler, authentication, the router (an unknown path,
//! a method the route does not serve) or the limits on a request's target and headers. And bad
//! input is never a 5xx.
//!
//! The walk takes the routes from the OpenAPI document, so a route added there is walked too.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

/// Asserts that `response` is an error in the API's JSON shape and not a server fault; the
/// body, for further checks.
async fn assert_error_shape(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    assert!(
        status.is_client_error(),
        "{what}: bad input must get a 4xx, got {status}"
    );
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.bytes().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} with content type {content_type:?} and body {:?}",
        String::from_utf8_lossy(&body)
    );
    let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!("{what}: {status} body is not JSON ({e}): {body:?}");
    });
    let object = json.as_object().unwrap_or_else(|| panic!("{what}: {json}"));
    for key in object.keys() {
        assert!(
            ["error", "message", "field", "rule", "original"].contains(&key.as_str()),
            "{what}: unexpected key {key}: {json}"
        );
    }
    assert!(json["error"].is_string(), "{what}: {json}");
    assert!(json["message"].is_string(), "{what}: {json}");
    for optional in ["field", "rule"] {
        assert!(
            json.get(optional).is_none_or(Value::is_string),
            "{what}: {json}"
        );
    }
    assert!(
        json.get("original").is_none_or(
            |original| json["rule"] == "idempotency_conflict" && original["id"].is_string()
        ),
        "{what}: {json}"
    );
    json
}

/// The documented routes as (method, concrete path), path parameters filled in.
async fn documented_routes(app: &TestApp) -> Vec<(Method, String)> {
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        // Every path parameter gets a value no route accepts as it is.
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, concrete.clone()));
        }
    }
    assert!(routes.len() >= 15, "{routes:?}");
    routes
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = app.client.request(method, app.url(path));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_error_of_every_route_is_json_of_one_shape() {
    let app = spawn_app().await;
    let reader = app
        .token("errors-acme", &["events:read", "log:read", "verify"])
        .await;
    let routes = documented_routes(&app).await;

    // Each documented route with a bad token, with a good one and bad input (a body that is
    // not JSON, path parameters that name nothing), and with an unknown parameter.
    for (method, path) in &routes {
        for token in [
            Some("not-a-token"),
            Some(reader.as_str()),
            Some(app.admin_token.as_str()),
        ] {
            let response = send(&app, method.clone(), path, token).await;
            if response.status().is_success() {
                continue;
            }
            assert_error_shape(response, &format!("{method} {path}")).await;
        }
        let with_unknown = format!("{path}?no_such_parameter=1");
        let response = send(&app, method.clone(), &with_unknown, Some(&reader)).await;
        if !response.status().is_success() {
            assert_error_shape(response, &format!("{method} {with_unknown}")).await;
        }
    }

    // Every documented path with the methods it does not serve: 405, with Allow.
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "FROB"];
    for (_, path) in &routes {
        let served: Vec<&Method> = routes
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m)
            .collect();
        for method in methods {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            if served.contains(&&method) {
                continue;
            }
            let response = send(&app, method.clone(), path, Some(&reader)).await;
            let what = format!("{method} {path}");
            if path.starts_with("/logs/") && response.status() == 404 {
                // The tiles route takes any path below /logs/{tenant}/.
                assert_error_shape(response, &what).await;
                continue;
            }
            assert_eq!(response.status(), 405, "{what}");
            assert!(response.headers().contains_key("allow"), "{what}");
            let json = assert_error_shape(response, &what).await;
            assert_eq!(json["error"], "method_not_allowed", "{what}");
            assert_eq!(json["field"], "method", "{what}");
            assert_eq!(json["rule"], "method_not_allowed", "{what}");
        }
    }

    // Paths no route serves, with any method. (`/` leads to the console.)
    for path in ["/nope", "/v1", "/v1/events/x/y", "/v2/events", "/health/x"] {
        for method in ["GET", "POST", "DELETE", "FROB"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let what = format!("{method} {path}");
            let response = send(&app, method, path, Some(&reader)).await;
            assert_eq!(response.status(), 404, "{what}");
            let json = assert_error_shape(response, &what).await;
            assert_eq!(json["error"], "not_found", "{what}");
            assert_eq!(json["field"], "path", "{what}");
            assert_eq!(json["rule"], "unknown_route", "{what}");
        }
    }

    // An idempotency key reused for another event: 422, the same shape, with the receipt of
    // the event the key names.
    let writer = app.token("errors-acme", &["events:write"]).await;
    let keyed = |n| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&writer)
            .header("Idempotency-Key", "errors-key")
            .json(&crate::helpers::event(n))
            .send()
    };
    let original: Value = keyed(1).await.unwrap().json().await.unwrap();
    let response = keyed(2).await.unwrap();
    assert_eq!(response.status(), 422);
    let json = assert_error_shape(response, "a reused idempotency key").await;
    assert_eq!(json["rule"], "idempotency_conflict");
    assert_eq!(json["original"], original);

    // A request target over the limit: 414.
    let long = format!(
        "/v1/events?q={}",
        "a".repeat(sealtrail_server::http::MAX_URI_BYTES)
    );
    let response = send(&app, Method::GET, &long, Some(&reader)).await;
    assert_eq!(response.status(), 414);
    let json = assert_error_shape(response, "a long URI").await;
    assert_eq!(json["rule"], "max_length");

    // Headers over the limits: one too long, or too many.
    let response = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&reader)
        .header(
            "X-Padding",
            "a".repeat(sealtrail_server::http::MAX_HEADER_BYTES),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let json = assert_error_shape(response, "a long header").await;
    assert_eq!(json["field"], "x-padding");
    let mut request = app.client.get(app.url("/v1/events")).bearer_auth(&reader);
    for n in 0..sealtrail_server::http::MAX_HEADERS {
        request = request.header(format!("X-Extra-{n}"), "1");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 431);
    assert_error_shape(response, "many headers").await;

    app.stop().await;
}

/// A NUL in a search filter is the caller's mistake (400 naming the filter), not the index's
/// failure: `q` with one was a 503, and the other filters silently matched nothing.
#[tokio::test]
async fn a_nul_in_a_filter_is_a_400_naming_it() {
    let app = spawn_app().await;
    let reader = app
        .token("errors-nul", &["events:read", "events:write"])
        .await;
    // An indexed event, so that the text search really runs.
    assert_eq!(
        app.post_event(&reader, &crate::helpers::event(0))
            .await
            .status(),
        201
    );
    let indexed = send(
        &app,
        Method::GET,
        "/v1/events?wait_for_seq=0",
        Some(&reader),
    )
    .await;
    assert_eq!(indexed.status(), 200);
    for filter in [
        "q",
        "actor",
        "action",
        "target_type",
        "target_id",
        "source",
        "cursor",
    ] {
        let path = format!("/v1/events?{filter}=a%00b");
        let response = send(&app, Method::GET, &path, Some(&reader)).await;
        assert_eq!(response.status(), 400, "{filter}");
        let json = assert_error_shape(response, &path).await;
        assert_eq!(json["field"], filter);
        assert_eq!(json["rule"], "nul_character");
    }
    app.stop().await;
}

/// Revoking a token that does not exist names the id and the rule, as every refusal does.
#[tokio::test]
async fn revoking_an_unknown_token_names_the_id() {
    let app = spawn_app().await;
    let response = send(
        &app,
        Method::DELETE,
        "/v1/admin/tokens/tok_none",
        Some(&app.admin_token),
    )
    .await;
    assert_eq!(response.status(), 404);
    let json = assert_error_shape(response, "revoke").await;
    assert_eq!(json["field"], "id");
    assert_eq!(json["rule"], "unknown_token");
    app.stop().await;
}

/// Sends `request` as raw bytes on a new connection and returns the whole answer (the server
/// closes the connection after these refusals).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it has read all of a huge request: a failed
    // write is then expected, and the answer is still there to read.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer
}

/// Requests refused by the HTTP parser itself, before any route or middleware sees them — a
/// target of 64 KiB or more, more headers than the parser holds, a head over its buffer, a
/// request line that is not HTTP — still get the JSON error shape.
#[tokio::test]
async fn what_the_http_parser_refuses_is_json_of_one_shape_too() {
    let app = spawn_app().await;
    let many_headers: Vec<u8> = (0..150)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a 70 KiB target",
            [
                &b"GET /v1/events?actor="[..],
                &vec![b'a'; 70 * 1024],
                b" HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
            .concat(),
            414,
            "max_length",
        ),
        (
            "150 headers",
            [
                &b"GET /health HTTP/1.1\r\nHost: x\r\n"[..],
                &many_headers,
                b"\r\n",
            ]
            .concat(),
            431,
            "max_size",
        ),
        (
            "a 600 KiB header",
            [
                &b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "[..],
                &vec![b'a'; 600 * 1024],
                b"\r\n\r\n",
            ]
            .concat(),
            431,
            "max_size",
        ),
        (
            "a malformed request line",
            b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "http_syntax",
        ),
        (
            "a header name with a space",
            b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n".to_vec(),
            400,
            "http_syntax",
        ),
    ];
    for (what, request, status, rule) in cases {
        let answer = raw_exchange(&app, &request).await;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: no complete answer: {text:?}"));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {head}"
        );
        let body: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{what}: body {body:?} is not JSON: {e}"));
        assert_eq!(body["rule"], rule, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
        assert!(body.get("field").is_some(), "{what}: {body}");
    }
    // The server is as it was: an ordinary request on a new connection is served.
    let health = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
