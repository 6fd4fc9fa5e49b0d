//! OCSF: one event per line, in the Open Cybersecurity Schema Framework, schema 1.5.0, for
//! SIEMs that ingest OCSF (Amazon Security Lake, Splunk, Sentinel, ...).
//!
//! ## The mapping of `activity` to OCSF classes
//!
//! | sealtrail `activity` | OCSF class | `activity_id` |
//! | --- | --- | --- |
//! | `login`, `logout` | Authentication (3002) | 1 Logon, 2 Logoff |
//! | `create`, `read`, `update`, `delete` | API Activity (6003) | 1 Create, 2 Read, 3 Update, 4 Delete |
//! | `export`, `disclose` | Web Resources Activity (6001) | 7 Export, 8 Share |
//! | `admin` | by the action's words, see below | |
//! | `other`, none | API Activity (6003) | 99 Other, 0 Unknown |
//!
//! - **API Activity rather than Datastore Activity (6005)** for create/read/update/delete:
//!   sealtrail's events are what an application did on behalf of a user (a physician read a
//!   patient's record through `ehr-web`), which is what API Activity describes (`api.operation`
//!   = the action, `api.service.name` = `source.app`, `resources` = the targets). Datastore
//!   Activity describes queries against a database (database, table, query), which producers
//!   do not send.
//! - **Admin actions** are classed by the words of `action` (split on anything but letters
//!   and digits, lowercased): one of `role`, `permission`, `privilege`, `grant`, `scope`,
//!   `token` (and plurals) → User Access Management (3005; `assign`/`grant`/`add` → 1 Assign
//!   Privileges, `revoke`/`remove` → 2 Revoke Privileges, else 99), whose `privileges` are the
//!   strings of `details.privileges`, `details.roles` or `details.scopes` (else the action);
//!   else one of `user`, `account`, `password`, `mfa`, `member` → Account Change (3001;
//!   create 1, enable 2, password change 3, password reset 4, disable 5, delete 6, lock 9,
//!   else 99), whose `user` is the first target of type `user` or `account` (else the
//!   actor); else Entity Management (3004; create 1, read 2, update 3, delete 4, enable 8,
//!   disable 9, else 99), whose `entity` is the first target (else the action).
//! - **Common fields.** `metadata.uid` = the event id, `metadata.sequence` = seq,
//!   `metadata.tenant_uid` = the tenant, `metadata.event_code` = the action,
//!   `metadata.logged_time` = `received_at`; `time` = the event time (`occurred_at`, else
//!   `received_at`) in milliseconds; `status_id` 1 Success, 2 Failure, 0 Unknown from
//!   `outcome`, `status_detail` = `outcome_reason`; `severity_id` 1 Informational, 2 Low for a
//!   failure; `actor.user` from `actor` (`type_id` 1 User, 3 System, 99 Other for services and
//!   API keys, 0 Unknown for anonymous); `src_endpoint.ip` = `context.ip`;
//!   `http_request.user_agent` = `context.user_agent`.
//! - **Nothing is lost.** `unmapped.sealtrail` carries `event_hash`, `prev_hash`, the action,
//!   the targets, `source`, `context`, `disclosure` and `details` as they are in the log. Web
//!   Resources Activity has no `actor` in OCSF 1.5.0, so for exports and disclosures the actor
//!   is there too (`unmapped.sealtrail.actor`). The NDJSON format is the one to use as
//!   evidence: OCSF is a projection.

use sealtrail_core::Timestamp;
use serde_json::{Map, Value, json};

/// The OCSF schema version the events follow.
pub const SCHEMA_VERSION: &str = "1.5.0";

/// Category 3, Identity & Access Management; category 6, Application Activity.
const IAM: (u64, &str) = (3, "Identity & Access Management");
const APPLICATION: (u64, &str) = (6, "Application Activity");

struct Class {
    uid: u64,
    name: &'static str,
    category: (u64, &'static str),
}

const ACCOUNT_CHANGE: Class = Class {
    uid: 3001,
    name: "Account Change",
    category: IAM,
};
const AUTHENTICATION: Class = Class {
    uid: 3002,
    name: "Authentication",
    category: IAM,
};
const ENTITY_MANAGEMENT: Class = Class {
    uid: 3004,
    name: "Entity Management",
    category: IAM,
};
const USER_ACCESS: Class = Class {
    uid: 3005,
    name: "User Access Management",
    category: IAM,
};
const WEB_RESOURCES: Class = Class {
    uid: 6001,
    name: "Web Resources Activity",
    category: APPLICATION,
};
const API_ACTIVITY: Class = Class {
    uid: 6003,
    name: "API Activity",
    category: APPLICATION,
};

/// The OCSF event of one sealtrail event.
pub fn event(tenant: &str, seq: u64, event_hash: &str, event: &Value) -> Value {
    let action = event["action"].as_str().unwrap_or_default();
    let words = words(action);
    let has = |names: &[&str]| words.iter().any(|w| names.contains(&w.as_str()));
    let activity = event["activity"].as_str().unwrap_or_default();
    let user = user(&event["actor"]);
    let mut unmapped = Map::new();
    unmapped.insert("event_hash".into(), json!(event_hash));
    for field in [
        "prev_hash",
        "action",
        "activity",
        "targets",
        "source",
        "context",
        "disclosure",
        "details",
    ] {
        if !event[field].is_null() {
            unmapped.insert(field.into(), event[field].clone());
        }
    }
    let mut fields = Map::new();
    let (class, activity_id, activity_name) = match activity {
        "login" => (&AUTHENTICATION, 1, "Logon"),
        "logout" => (&AUTHENTICATION, 2, "Logoff"),
        "create" => (&API_ACTIVITY, 1, "Create"),
        "read" => (&API_ACTIVITY, 2, "Read"),
        "update" => (&API_ACTIVITY, 3, "Update"),
        "delete" => (&API_ACTIVITY, 4, "Delete"),
        "export" => (&WEB_RESOURCES, 7, "Export"),
        "disclose" => (&WEB_RESOURCES, 8, "Share"),
        "admin" if has(&ACCESS_WORDS) => {
            let (id, name) = if has(&["assign", "grant", "add", "create"]) {
                (1, "Assign Privileges")
            } else if has(&["revoke", "remove", "delete"]) {
                (2, "Revoke Privileges")
            } else {
                (99, "Other")
            };
            (&USER_ACCESS, id, name)
        }
        "admin" if has(&ACCOUNT_WORDS) => {
            let (id, name) = if has(&["password"]) && has(&["reset"]) {
                (4, "Password Reset")
            } else if has(&["password"]) {
                (3, "Password Change")
            } else {
                verb(
                    &words,
                    &[
                        ("create", 1, "Create"),
                        ("enable", 2, "Enable"),
                        ("disable", 5, "Disable"),
                        ("delete", 6, "Delete"),
                        ("lock", 9, "Lock"),
                    ],
                )
            };
            (&ACCOUNT_CHANGE, id, name)
        }
        "admin" => {
            let (id, name) = verb(
                &words,
                &[
                    ("create", 1, "Create"),
                    ("read", 2, "Read"),
                    ("update", 3, "Update"),
                    ("delete", 4, "Delete"),
                    ("enable", 8, "Enable"),
                    ("disable", 9, "Disable"),
                ],
            );
            (&ENTITY_MANAGEMENT, id, name)
        }
        "" => (&API_ACTIVITY, 0, "Unknown"),
        _ => (&API_ACTIVITY, 99, "Other"),
    };
    match class.uid {
        3002 => {
            fields.insert("user".into(), user.clone().unwrap_or_else(|| json!({})));
            fields.insert("service".into(), service(event));
        }
        6003 => {
            let mut api = Map::new();
            api.insert("operation".into(), json!(action));
            if let Some(app) = event["source"]["app"].as_str() {
                api.insert("service".into(), json!({"name": app}));
            }
            if let Some(request) = event["context"]["request_id"].as_str() {
                api.insert("request".into(), json!({"uid": request}));
            }
            fields.insert("api".into(), Value::Object(api));
            if let Some(resources) = resources(event) {
                fields.insert("resources".into(), resources);
            }
        }
        6001 => {
            let resources = resources(event).unwrap_or_else(|| json!([{"name": action}]));
            fields.insert("web_resources".into(), resources);
            if let Some(actor) = event.get("actor") {
                unmapped.insert("actor".into(), actor.clone());
            }
        }
        3005 => {
            let target = target_user(event).or_else(|| user.clone());
            fields.insert("user".into(), target.unwrap_or_else(|| json!({})));
            fields.insert("privileges".into(), privileges(event, action));
        }
        3001 => {
            let target = target_user(event).or_else(|| user.clone());
            fields.insert("user".into(), target.unwrap_or_else(|| json!({})));
        }
        _ => {
            let entity = match event["targets"].get(0) {
                Some(target) => resource(target),
                None => json!({"name": action}),
            };
            fields.insert("entity".into(), entity);
        }
    }
    // Web Resources Activity has no actor (see the module docs); every other class does.
    if class.uid != 6001
        && let Some(user) = user
    {
        fields.insert("actor".into(), json!({"user": user}));
    }
    if let Some(ip) = event["context"]["ip"].as_str() {
        fields.insert("src_endpoint".into(), json!({"ip": ip}));
    } else if class.uid == 6003 {
        // Required by API Activity, even when the producer did not say where from.
        fields.insert("src_endpoint".into(), json!({}));
    }
    if let Some(agent) = event["context"]["user_agent"].as_str() {
        fields.insert("http_request".into(), json!({"user_agent": agent}));
    }
    let (status_id, status, severity_id, severity) = match event["outcome"].as_str() {
        Some("success") => (1, "Success", 1, "Informational"),
        Some("failure") => (2, "Failure", 2, "Low"),
        _ => (0, "Unknown", 1, "Informational"),
    };
    if let Some(reason) = event["outcome_reason"].as_str() {
        fields.insert("status_detail".into(), json!(reason));
    }
    let millis = |field: &Value| {
        field
            .as_str()
            .and_then(|text| Timestamp::parse(text).ok())
            .map(|t| t.unix_micros().div_euclid(1000))
    };
    let received = millis(&event["received_at"]).unwrap_or_default();
    let time = millis(&event["occurred_at"]).unwrap_or(received);
    let mut metadata = json!({
        "version": SCHEMA_VERSION,
        "product": {
            "name": "sealtrail",
            "vendor_name": "sealtrail",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "uid": event["id"],
        "sequence": seq,
        "tenant_uid": tenant,
        "event_code": action,
        "logged_time": received,
        "log_name": "sealtrail",
    });
    if event["id"].is_null() {
        metadata.as_object_mut().map(|m| m.remove("uid"));
    }
    let mut out = json!({
        "class_uid": class.uid,
        "class_name": class.name,
        "category_uid": class.category.0,
        "category_name": class.category.1,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class.uid * 100 + activity_id,
        "type_name": format!("{}: {activity_name}", class.name),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": time,
        "message": action,
        "metadata": metadata,
        "unmapped": {"sealtrail": Value::Object(unmapped)},
    });
    if let Value::Object(object) = &mut out {
        object.extend(fields);
    }
    out
}

const ACCESS_WORDS: [&str; 12] = [
    "role",
    "roles",
    "permission",
    "permissions",
    "privilege",
    "privileges",
    "grant",
    "grants",
    "scope",
    "scopes",
    "token",
    "tokens",
];
const ACCOUNT_WORDS: [&str; 7] = [
    "user", "users", "account", "accounts", "password", "mfa", "member",
];

/// The words of an action: runs of letters and digits, lowercased.
fn words(action: &str) -> Vec<String> {
    action
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The activity named by the first of `verbs` among `words` (also as a past tense,
/// `created`), else 99 Other.
fn verb(words: &[String], verbs: &[(&str, u64, &'static str)]) -> (u64, &'static str) {
    verbs
        .iter()
        .find(|(verb, _, _)| {
            words.iter().any(|w| {
                w == verb || w.strip_suffix('d').is_some_and(|w| w == *verb) || {
                    w.strip_suffix("ed").is_some_and(|w| w == *verb)
                }
            })
        })
        .map_or((99, "Other"), |(_, id, name)| (*id, *name))
}

/// An OCSF user from sealtrail's `actor`.
fn user(actor: &Value) -> Option<Value> {
    let id = actor["id"].as_str()?;
    let mut user = Map::new();
    user.insert("uid".into(), json!(id));
    if let Some(name) = actor["name"].as_str() {
        user.insert("name".into(), json!(name));
    }
    if let Some(email) = actor["email"].as_str() {
        user.insert("email_addr".into(), json!(email));
    }
    let (type_id, kind) = match actor["type"].as_str() {
        Some("user") => (1, "User"),
        Some("system") => (3, "System"),
        Some("service") => (99, "Service"),
        Some("api_key") => (99, "API Key"),
        _ => (0, "Unknown"),
    };
    user.insert("type_id".into(), json!(type_id));
    user.insert("type".into(), json!(kind));
    Some(Value::Object(user))
}

/// The first target of type `user` or `account`, as an OCSF user.
fn target_user(event: &Value) -> Option<Value> {
    let target = event["targets"]
        .as_array()?
        .iter()
        .find(|t| matches!(t["type"].as_str(), Some("user" | "account")))?;
    let mut user = Map::new();
    for (from, to) in [("id", "uid"), ("name", "name")] {
        if let Some(text) = target[from].as_str() {
            user.insert(to.into(), json!(text));
        }
    }
    Some(Value::Object(user))
}

/// A target as OCSF resource details (`type`, `uid`, `name`).
fn resource(target: &Value) -> Value {
    let mut resource = Map::new();
    for (from, to) in [("type", "type"), ("id", "uid"), ("name", "name")] {
        if let Some(text) = target[from].as_str() {
            resource.insert(to.into(), json!(text));
        }
    }
    Value::Object(resource)
}

fn resources(event: &Value) -> Option<Value> {
    let targets = event["targets"].as_array().filter(|t| !t.is_empty())?;
    Some(Value::Array(targets.iter().map(resource).collect()))
}

fn service(event: &Value) -> Value {
    match event["source"]["app"].as_str() {
        Some(app) => json!({"name": app}),
        None => json!({}),
    }
}

/// The privileges an access change names: `details.privileges`, `.roles` or `.scopes` when
/// one is a list of strings, else the action.
fn privileges(event: &Value, action: &str) -> Value {
    for field in ["privileges", "roles", "scopes"] {
        if let Some(list) = event["details"][field].as_array() {
            let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            if !names.is_empty() {
                return json!(names);
            }
        }
    }
    json!([action])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(activity: &str, action: &str) -> Value {
        json!({
            "id": "0190a0b0-0000-7000-8000-000000000001", "seq": 4,
            "received_at": "2026-11-23T10:00:01.000000Z",
            "occurred_at": "2026-11-23T10:00:00.250000Z",
            "action": action, "activity": activity, "outcome": "failure",
            "actor": {"id": "u-1", "type": "user", "email": "a@b.example"},
            "targets": [{"type": "user", "id": "u-7", "name": "Ann"}],
            "context": {"ip": "10.1.2.3"}, "source": {"app": "ehr"}
        })
    }

    #[test]
    fn classes_follow_the_activity_and_the_admin_actions_words() {
        let cases = [
            ("login", "user.login", 3002, 1),
            ("logout", "user.logout", 3002, 2),
            ("read", "patient.record.read", 6003, 2),
            ("delete", "patient.record.delete", 6003, 4),
            ("export", "report.export", 6001, 7),
            ("disclose", "record.disclose", 6001, 8),
            ("admin", "iam.role.grant", 3005, 1),
            ("admin", "sealtrail.token.revoke", 3005, 2),
            ("admin", "user.password.reset", 3001, 4),
            ("admin", "account.disabled", 3001, 5),
            ("admin", "sealtrail.tenant.freeze", 3004, 99),
            ("admin", "clinic.settings.update", 3004, 3),
            ("other", "x.y", 6003, 99),
        ];
        for (activity, action, class_uid, activity_id) in cases {
            let out = event("acme", 4, "ab", &base(activity, action));
            assert_eq!(out["class_uid"], class_uid, "{action}");
            assert_eq!(out["activity_id"], activity_id, "{action}");
            assert_eq!(out["type_uid"], class_uid * 100 + activity_id, "{action}");
            assert_eq!(out["status_id"], 2);
            assert_eq!(out["time"], 1_795_428_000_250_i64);
            assert_eq!(out["metadata"]["sequence"], 4);
            assert_eq!(out["metadata"]["tenant_uid"], "acme");
            assert_eq!(out["unmapped"]["sealtrail"]["event_hash"], "ab");
        }
    }
}
