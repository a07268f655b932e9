//! `GET /v1/mcp/servers` and the MCP summary in `/discover`, through the real app.

use std::time::{Duration, Instant};

use kubiya::config::Settings;
use kubiya::provider_setup::ProviderSetup;
use kubiya::startup::Application;
use kubiya_actors::mcp::McpServerConfig;
use serde_json::Value;

use crate::support::flood_server;

async fn get(client: &awc::Client, url: &str) -> (u16, Value) {
    let mut response = client.get(url).send().await.expect("request sent");
    let body = response.body().await.expect("body read");
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).expect("a JSON body"),
    )
}

#[actix_rt::test]
async fn the_servers_endpoint_shows_each_servers_state_and_discover_counts_them() {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.mcp_servers.insert("flood".into(), flood_server());
    let mut disabled = McpServerConfig::new("node", ["unused.js"]);
    disabled.enabled = Some(false);
    settings.mcp_servers.insert("off".into(), disabled);
    let provider = ProviderSetup::offline();
    let app = Application::build(&settings, &provider).expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until_stopped());
    let client = awc::Client::default();

    let deadline = Instant::now() + Duration::from_secs(30);
    let servers = loop {
        let (status, body) = get(&client, &format!("{base}/v1/mcp/servers")).await;
        assert_eq!(status, 200, "{body}");
        let servers = body["servers"].as_array().expect("a servers array").clone();
        if servers.iter().any(|server| server["state"] == "running") {
            break servers;
        }
        assert!(
            Instant::now() < deadline,
            "the flood server never ran: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(servers.len(), 2);
    let flood = &servers[0];
    assert_eq!(flood["name"], "flood");
    assert_eq!(flood["protocol_version"], "2025-11-25");
    assert_eq!(flood["tool_count"], 3);
    assert_eq!(
        flood["tools"],
        serde_json::json!(["flood__flood", "flood__grow", "flood__hold"])
    );
    assert_eq!(flood["restarts"], 0);
    assert!(flood["last_error"].is_null());
    assert!(flood["pid"].is_u64());
    let off = &servers[1];
    assert_eq!(off["name"], "off");
    assert_eq!(off["state"], "stopped");
    assert_eq!(off["tool_count"], 0);

    let (status, discover) = get(&client, &format!("{base}/discover")).await;
    assert_eq!(status, 200);
    assert_eq!(
        discover["mcp"],
        serde_json::json!({"servers": 2, "running": 1, "tools": 3, "list": [
            {"name": "flood", "state": "running", "tool_count": 3},
            {"name": "off", "state": "stopped", "tool_count": 0}
        ]})
    );
}
