//! The supervisor against a remote server that requires OAuth: a small protected resource and
//! authorization server in the test (the conformance suite's fixtures cannot expire or revoke
//! a token, nor lie about who they are). The client credentials buy a token after the first
//! 401, the token is renewed before it expires and replaced when the server stops accepting
//! it; and a server whose metadata points elsewhere never sees the credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use kubiya_actors::mcp::{McpOAuthConfig, McpServerConfig, ServerState, Shutdown};
use serde_json::{Value, json};

use crate::support::{call, start, test_settings, wait_for, wait_running};

const CLIENT_ID: &str = "agent-client";
const CLIENT_SECRET: &str = "s3cret-value";

/// How the fake realm behaves, and what it saw.
#[derive(Default)]
struct Realm {
    base: String,
    /// The issuer its metadata claims (its own URL when `None`).
    metadata_issuer: Option<String>,
    /// The resource its protected resource metadata names (its `/mcp` when `None`).
    resource: Option<String>,
    expires_in: u64,
    /// Token requests: the Authorization header and the form.
    token_requests: Vec<(String, String)>,
    /// The token it accepts, and until when.
    valid: Option<(String, Instant)>,
    /// MCP requests it refused with 401.
    refused: usize,
    /// Refuses every token (a server that keeps asking).
    refuse_all: bool,
}

type Shared = web::Data<Mutex<Realm>>;

async fn mcp(realm: Shared, request: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let mut realm = realm.lock().unwrap();
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let accepted = !realm.refuse_all
        && matches!((&realm.valid, &presented),
        (Some((token, until)), Some(presented)) if token == presented && Instant::now() < *until);
    if !accepted {
        realm.refused += 1;
        let challenge = format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            realm.base
        );
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", challenge))
            .finish();
    }
    let Some(id) = body.get("id").cloned() else {
        return HttpResponse::Accepted().finish();
    };
    let result = match body["method"].as_str().unwrap_or_default() {
        "initialize" => json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
            "serverInfo": {"name": "protected", "version": "1"}}),
        "tools/list" => json!({"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}),
        "tools/call" => json!({"content": [{"type": "text", "text": "authorized"}]}),
        _ => {
            return HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "Method not found"}}));
        }
    };
    HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

async fn resource_metadata(realm: Shared) -> HttpResponse {
    let realm = realm.lock().unwrap();
    let resource = realm
        .resource
        .clone()
        .unwrap_or_else(|| format!("{}/mcp", realm.base));
    HttpResponse::Ok().json(json!({"resource": resource, "authorization_servers": [realm.base]}))
}

async fn authorization_metadata(realm: Shared) -> HttpResponse {
    let realm = realm.lock().unwrap();
    let issuer = realm
        .metadata_issuer
        .clone()
        .unwrap_or_else(|| realm.base.clone());
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{}/token", realm.base),
        "grant_types_supported": ["client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn token(realm: Shared, request: HttpRequest, form: String) -> HttpResponse {
    let mut realm = realm.lock().unwrap();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    realm.token_requests.push((authorization, form));
    let issued = format!("token-{}", realm.token_requests.len());
    let life = Duration::from_secs(realm.expires_in);
    realm.valid = Some((issued.clone(), Instant::now() + life));
    HttpResponse::Ok().json(json!({"access_token": issued, "token_type": "Bearer",
        "expires_in": realm.expires_in}))
}

/// Starts the realm on a free loopback port.
fn serve(mut realm: Realm) -> Arc<Mutex<Realm>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    realm.base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let shared = web::Data::new(Mutex::new(realm));
    let state = shared.clone().into_inner();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/mcp", web::post().to(mcp))
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                web::get().to(resource_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                web::get().to(authorization_metadata),
            )
            .route("/token", web::post().to(token))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    state
}

fn protected(realm: &Arc<Mutex<Realm>>) -> McpServerConfig {
    let mut config = McpServerConfig::remote(format!("{}/mcp", realm.lock().unwrap().base));
    config.oauth = Some(McpOAuthConfig {
        client_id: CLIENT_ID.to_owned(),
        client_secret: Some(CLIENT_SECRET.to_owned()),
        scope: None,
        issuer: None,
    });
    config
}

#[actix_rt::test]
async fn a_server_that_asks_for_oauth_gets_client_credentials_tokens_renewed_and_replaced() {
    let realm = serve(Realm {
        expires_in: 2,
        ..Realm::default()
    });
    let supervisor = start(vec![("protected", protected(&realm))], test_settings());
    wait_running(&supervisor, "protected").await;
    let answer = call(&supervisor, "protected__whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(answer.content, "authorized");
    {
        let realm = realm.lock().unwrap();
        assert_eq!(realm.token_requests.len(), 1, "one token for the session");
        let (authorization, form) = &realm.token_requests[0];
        // base64("agent-client:s3cret-value")
        assert_eq!(
            authorization, "Basic YWdlbnQtY2xpZW50OnMzY3JldC12YWx1ZQ==",
            "client_secret_basic"
        );
        assert!(form.contains("grant_type=client_credentials"), "{form}");
        let resource = format!("resource={}", encode(&format!("{}/mcp", realm.base)));
        assert!(form.contains(&resource), "bound to the server: {form}");
    }

    // Shortly before the token expires, the next call gets a new one first: no 401 on the way.
    // The wait is the scenario: the realm's clock, in another process's sense, runs real time.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refused_before = realm.lock().unwrap().refused;
    let answer = call(&supervisor, "protected__whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(answer.content, "authorized");
    {
        let realm = realm.lock().unwrap();
        assert_eq!(realm.token_requests.len(), 2, "renewed before expiry");
        assert_eq!(
            realm.refused, refused_before,
            "the renewed token was sent at once"
        );
    }

    // A token the server stops accepting (revoked) is replaced after its 401.
    realm.lock().unwrap().valid = None;
    let answer = call(&supervisor, "protected__whoami", json!({}))
        .await
        .unwrap();
    assert_eq!(answer.content, "authorized");
    assert_eq!(realm.lock().unwrap().token_requests.len(), 3);
    supervisor.send(Shutdown).await.unwrap();
}

/// Waits for `name` to fail and returns its error, after checking the realm never got a
/// token request.
async fn refused_without_credentials(realm: Realm, issuer: Option<&str>) -> String {
    let realm = serve(Realm {
        expires_in: 3600,
        ..realm
    });
    let mut config = protected(&realm);
    if let Some(oauth) = config.oauth.as_mut() {
        oauth.issuer = issuer.map(str::to_owned);
    }
    let supervisor = start(vec![("protected", config)], test_settings());
    let status = wait_for(&supervisor, "protected", |status| {
        status.state == ServerState::Failed
    })
    .await;
    supervisor.send(Shutdown).await.unwrap();
    assert!(
        realm.lock().unwrap().token_requests.is_empty(),
        "the credentials were sent"
    );
    let error = status.last_error.unwrap_or_default();
    assert!(!error.contains(CLIENT_SECRET), "{error}");
    error
}

#[actix_rt::test]
async fn credentials_never_go_to_an_authorization_server_that_claims_another_identity() {
    let error = refused_without_credentials(
        Realm {
            metadata_issuer: Some("https://login.example.com".to_owned()),
            ..Realm::default()
        },
        None,
    )
    .await;
    assert!(error.contains("issuer"), "{error}");
}

#[actix_rt::test]
async fn credentials_never_go_out_for_metadata_about_another_resource() {
    let error = refused_without_credentials(
        Realm {
            resource: Some("https://other.example.com/mcp".to_owned()),
            ..Realm::default()
        },
        None,
    )
    .await;
    assert!(error.contains("not this server"), "{error}");
}

#[actix_rt::test]
async fn credentials_go_only_to_the_configured_issuer() {
    let error =
        refused_without_credentials(Realm::default(), Some("https://login.example.com")).await;
    assert!(error.contains("configured issuer"), "{error}");
}

fn encode(text: &str) -> String {
    text.replace(':', "%3A").replace('/', "%2F")
}

#[actix_rt::test]
async fn a_server_that_refuses_every_token_gets_two_token_requests_per_message_at_most() {
    let realm = serve(Realm {
        expires_in: 3600,
        refuse_all: true,
        ..Realm::default()
    });
    let supervisor = start(vec![("protected", protected(&realm))], test_settings());
    let status = wait_for(&supervisor, "protected", |status| {
        status.state == ServerState::Failed
    })
    .await;
    supervisor.send(Shutdown).await.unwrap();
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("401"), "the refusal is reported: {error}");
    let realm = realm.lock().unwrap();
    // Each message: sent, refused, token, sent again, refused, token (step-up), refused.
    assert!(
        realm.token_requests.len() * 3 <= realm.refused * 2,
        "{} token requests for {} refusals",
        realm.token_requests.len(),
        realm.refused
    );
}
