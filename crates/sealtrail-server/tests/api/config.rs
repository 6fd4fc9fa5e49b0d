//! Configuration changes are admin actions: recorded in the `_system` log at the next start.

use crate::helpers::spawn_app_in;

fn config_events(app: &crate::helpers::TestApp) -> Vec<serde_json::Value> {
    let conn = sealtrail_store::Location::new(&app.data, None)
        .open_reader()
        .unwrap();
    let mut found = Vec::new();
    conn.for_each_entry("_system", 0, u64::MAX, &mut |_, entry| {
        let value: serde_json::Value = serde_json::from_slice(entry.unwrap()).unwrap();
        if value["action"] == "sealtrail.config.changed" {
            found.push(value["details"].clone());
        }
    })
    .unwrap();
    found
}

#[tokio::test]
async fn a_changed_configuration_is_audited_once_per_change() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.clone(), |_| {}).await;
    assert_eq!(
        config_events(&app).len(),
        1,
        "the first start records the configuration"
    );
    app.stop().await;

    let app = spawn_app_in(dir.clone(), |_| {}).await;
    assert_eq!(
        config_events(&app).len(),
        1,
        "an unchanged restart records nothing"
    );
    app.stop().await;

    let app = spawn_app_in(dir.clone(), |s| s.checkpoint_interval_ms = Some(75)).await;
    let events = config_events(&app);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["before"]["checkpoint_interval_ms"], 50);
    assert_eq!(events[1]["after"]["checkpoint_interval_ms"], 75);
    app.stop().await;
}
