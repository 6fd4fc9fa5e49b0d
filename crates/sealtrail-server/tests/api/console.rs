//! The console's routes (`http::console`) and `GET /v1/whoami`, which it signs in with.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_the_root_leads_to_it() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console");

    for (path, status, media) in [
        ("/console", 200, "text/html"),
        ("/console/app.js", 200, "text/javascript"),
        ("/console/proof.js", 200, "text/javascript"),
        ("/console/console.css", 200, "text/css"),
        ("/console/missing.js", 404, "application/json"),
    ] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert_eq!(
            csp,
            sealtrail_server::http::console::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(!csp.contains("unsafe-"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(media), "{path}: {content_type}");
    }
    // The page loads nothing from elsewhere and runs no inline script.
    let page = client
        .get(app.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert!(sealtrail_server::http::console::total_bytes() > 10_000);
    app.stop().await;
}

#[tokio::test]
async fn whoami_names_the_tenant_and_scopes_of_the_token() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:read", "log:read"]).await;
    let response = app
        .client
        .get(app.url("/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tenant"], "acme");
    assert_eq!(
        body["scopes"],
        serde_json::json!(["events:read", "log:read"])
    );
    assert!(body["token_id"].as_str().unwrap().starts_with("tok_"));
    assert!(!body.to_string().contains(&token));

    let anonymous = app.client.get(app.url("/v1/whoami")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}
