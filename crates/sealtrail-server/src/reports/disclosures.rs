//! `disclosures`: the accounting of disclosures of one individual's protected health
//! information, as 45 CFR 164.528 gives the individual the right to receive it — for each
//! disclosure its date, the recipient's name and address (if known), a brief description of
//! what was disclosed and a brief statement of its purpose — over the six years before the
//! request by default.
//!
//! ## What counts as a disclosure of the subject
//!
//! An event is a disclosure when its `activity` is `disclose` or it carries a `disclosure`
//! object. It is a disclosure *of the subject* when one of its `targets` has `id` equal to
//! the subject (any target type: a patient, a record, a person), or `details.subject` is the
//! subject (for producers that name the patient there). A disclosure whose outcome is
//! `failure` did not happen and is counted under `not_disclosed`, not listed.
//!
//! The fields of a row, from the event model (the `disclosure` object first, then `details`
//! for producers that put them there):
//!
//! | row field | from |
//! | --- | --- |
//! | `date` | `occurred_at`, else `received_at` |
//! | `recipient` | `disclosure.recipient`, else `details.recipient.name` |
//! | `recipient_address` | `disclosure.recipient_address`, else `details.recipient.address` |
//! | `description` | `disclosure.description`, else `details.description` |
//! | `purpose` | `disclosure.purpose`, else `details.purpose` |
//! | `basis` | `details.basis` (see below) |
//!
//! ## Exclusions (164.528(a)(1))
//!
//! The rule exempts some disclosures from the accounting. sealtrail recognises them by a
//! documented code in `details.basis`, or in the purpose when the purpose is itself one of
//! the codes (`"purpose": "payment"`), and by date for disclosures before the compliance
//! date. Excluded disclosures are not listed as rows but counted, by code, under `excluded`,
//! so that a reviewer sees that they exist and why they are left out:
//!
//! | code | 164.528(a)(1) |
//! | --- | --- |
//! | `treatment`, `payment`, `health_care_operations` | (i) to carry out treatment, payment and health care operations (164.506) |
//! | `to_individual` | (ii) to the individual about themselves (164.502) |
//! | `incidental` | (iii) incident to an otherwise permitted use or disclosure |
//! | `authorization` | (iv) pursuant to an authorization (164.508) |
//! | `facility_directory`, `involved_in_care` | (v) for the facility's directory or to persons involved in the individual's care (164.510) |
//! | `national_security` | (vi) for national security or intelligence purposes (164.512(k)(2)) |
//! | `custody` | (vii) to correctional institutions or law enforcement officials with custody (164.512(k)(5)) |
//! | `limited_data_set` | (viii) as part of a limited data set (164.514(e)) |
//! | `before_compliance_date` | (ix) before the compliance date (14 April 2003), by the event's date |
//!
//! Any other basis (public health, health oversight, judicial proceedings, law enforcement
//! other than custody, research without authorization, …) is a disclosure the individual is
//! owed, and is listed. The temporary suspension of 164.528(a)(2) is not applied: a covered
//! entity that must suspend an individual's right does so outside this report.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Rows;
use super::entry::{EntryView, text};

pub const COLUMNS: &[&str] = &[
    "seq",
    "date",
    "recipient",
    "recipient_address",
    "description",
    "purpose",
    "basis",
    "actor_id",
    "action",
];

/// The exclusion codes of 164.528(a)(1), as `details.basis` (or the purpose) spells them.
pub const EXCLUDED_BASES: &[&str] = &[
    "treatment",
    "payment",
    "health_care_operations",
    "to_individual",
    "incidental",
    "authorization",
    "facility_directory",
    "involved_in_care",
    "national_security",
    "custody",
    "limited_data_set",
    "before_compliance_date",
];

/// The HIPAA Privacy Rule's compliance date for most covered entities: disclosures before it
/// are excluded (164.528(a)(1)(ix)).
pub const COMPLIANCE_DATE: &str = "2003-04-14T00:00:00.000000Z";

pub struct Disclosures {
    subject: String,
    rows: Rows,
    excluded: BTreeMap<String, u64>,
    not_disclosed: u64,
}

impl Disclosures {
    pub fn new(subject: String) -> Disclosures {
        Disclosures {
            subject,
            rows: Rows::default(),
            excluded: BTreeMap::new(),
            not_disclosed: 0,
        }
    }

    /// Whether `e` is a disclosure of the subject.
    pub fn is_disclosure_of(e: &EntryView, subject: &str) -> bool {
        let disclosure = e.activity.as_deref() == Some("disclose") || e.disclosure.is_some();
        disclosure
            && (e.targets.iter().any(|t| t.id.as_deref() == Some(subject))
                || e.detail_str("subject") == Some(subject))
    }

    /// Why `e` is excluded from the accounting, if it is: its exclusion code.
    pub fn exclusion(e: &EntryView, purpose: Option<&str>) -> Option<String> {
        if e.event_time() < COMPLIANCE_DATE {
            return Some("before_compliance_date".into());
        }
        let code = |s: &str| s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        if let Some(basis) = e.detail_str("basis") {
            let basis = code(basis);
            return EXCLUDED_BASES.contains(&basis.as_str()).then_some(basis);
        }
        let purpose = code(purpose?);
        EXCLUDED_BASES
            .contains(&purpose.as_str())
            .then_some(purpose)
    }

    pub fn visit(&mut self, e: &EntryView) {
        if !Disclosures::is_disclosure_of(e, &self.subject) {
            return;
        }
        if e.outcome == "failure" {
            self.not_disclosed += 1;
            return;
        }
        let given = |from_disclosure: Option<&Option<String>>, outer: &str, inner: Option<&str>| {
            from_disclosure
                .and_then(|v| v.as_deref())
                .or_else(|| match inner {
                    Some(inner) => e.detail_path(outer, inner),
                    None => e.detail_str(outer),
                })
                .map(str::to_string)
        };
        let d = e.disclosure.as_ref();
        let recipient = given(d.map(|d| &d.recipient), "recipient", Some("name"));
        let address = given(
            d.map(|d| &d.recipient_address),
            "recipient",
            Some("address"),
        );
        let description = given(d.map(|d| &d.description), "description", None);
        let purpose = given(d.map(|d| &d.purpose), "purpose", None);
        if let Some(code) = Disclosures::exclusion(e, purpose.as_deref()) {
            *self.excluded.entry(code).or_default() += 1;
            return;
        }
        self.rows.push(json!({
            "seq": e.seq,
            "date": e.event_time(),
            "recipient": text(recipient.as_deref()),
            "recipient_address": text(address.as_deref()),
            "description": text(description.as_deref()),
            "purpose": text(purpose.as_deref()),
            "basis": text(e.detail_str("basis")),
            "actor_id": e.actor.id,
            "action": e.action,
        }));
    }

    pub fn finish(mut self) -> Rows {
        let total: u64 = self.excluded.values().sum();
        self.rows.extra.insert(
            "excluded".into(),
            json!({"total": total, "by_basis": self.excluded}),
        );
        self.rows
            .extra
            .insert("not_disclosed".into(), Value::from(self.not_disclosed));
        self.rows
    }
}
