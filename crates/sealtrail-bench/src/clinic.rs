//! A deterministic clinic: the audit events `sealtrail bench` sends.
//!
//! The events look like what an electronic health record and the systems around it log in a
//! working day: mostly record reads, then updates, notes, prescriptions, lab imports and
//! billing, logins (some failing) and logouts, and rarely exports, disclosures to third
//! parties and administrative actions. Who acts and on whom is skewed the way real access is:
//! clinicians and patients are drawn from Zipf distributions (a few hundred clinicians, tens of
//! thousands of patients), so a handful of busy clinicians and frequently seen patients account
//! for much of the traffic while the long tail still appears.
//!
//! Everything is a function of the seed: a [`Clinic`] (the people) is built from it, and each
//! [`EventStream`] (one client of the load driver, with its own producers) is built from the
//! seed and a stream number. The same seed and stream give the same bytes on every run and
//! machine, so two runs of the benchmark send the same events. Streams own their producers
//! (`source.instance` names the stream), so `source.seq` counts up without gaps or repeats per
//! producer even when many streams send at once, and request ids and idempotency keys never
//! collide between streams. Use a different stream number for every client of every workload
//! that writes to the same log: the same stream twice repeats its idempotency keys, which the
//! server answers as duplicates.
//!
//! Events are written straight into a byte buffer, ready to send as one `POST /v1/events` body
//! or as a JSON array for `POST /v1/events/batch`: generating costs about a microsecond per
//! event, small beside what the server does with it. Every string written is plain JSON text
//! that needs no escaping (the name lists hold no quotes or backslashes).

use std::io::Write as _;
use std::sync::Arc;

/// Clinicians who read and write records (the Zipf-skewed actors).
pub const CLINICIANS: usize = 400;
/// IT administrators, the actors of the rare admin actions.
pub const ADMINS: usize = 5;
/// Patients whose records are read and changed (the Zipf-skewed targets).
pub const PATIENTS: usize = 40_000;
/// Zipf exponent of clinician activity: the busiest clinician acts about 60 times as often as
/// the median one.
const ACTOR_SKEW: f64 = 1.0;
/// Zipf exponent of patient access: flatter, as most patients are seen a few times.
const PATIENT_SKEW: f64 = 0.8;
/// The simulated clock starts here (2026-11-23T07:00:00Z), in microseconds since the epoch.
const CLOCK_START_MICROS: i64 = 1_795_417_200_000_000;
/// Mean simulated time between two events of one stream: about 10 million events a day.
const MEAN_GAP_MICROS: u64 = 8_640;

const FIRST_NAMES: &[&str] = &[
    "Amara", "Ben", "Chen", "Dana", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe", "José", "Zoë", "Björn", "Siobhán",
];
const LAST_NAMES: &[&str] = &[
    "Lee",
    "Okafor",
    "Schmidt",
    "Garcia",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Silva",
    "Tanaka",
    "Murphy",
    "Rossi",
    "Cohen",
    "Patel",
    "Johansson",
    "Mensah",
    "Dubois",
    "Novak",
    "Fischer",
    "O'Brien",
    "Müller",
    "Ivanova",
    "Costa",
    "Kim",
    "Singh",
    "Moreau",
    "Larsen",
];

/// Roles and their share of clinicians (per thousand).
const ROLES: &[(&str, u32)] = &[
    ("physician", 250),
    ("nurse", 400),
    ("pharmacist", 50),
    ("front_desk", 150),
    ("billing", 100),
    ("lab_technician", 50),
];

const RECORD_FIELDS: &[&str] = &[
    "name",
    "dob",
    "address",
    "allergies",
    "medications",
    "diagnoses",
    "insurance",
    "vitals",
    "immunizations",
    "notes",
];
const PURPOSES: &[&str] = &[
    "treatment",
    "treatment",
    "treatment",
    "payment",
    "operations",
];
const LAB_PANELS: &[&str] = &["CBC", "BMP", "lipid_panel", "HbA1c", "TSH", "urinalysis"];
const DRUG_CLASSES: &[&str] = &[
    "antibiotic",
    "antihypertensive",
    "statin",
    "analgesic",
    "opioid",
    "anticoagulant",
];
const LOGIN_METHODS: &[&str] = &["password+totp", "sso", "badge", "password+totp"];
const LOGIN_FAILURES: &[&str] = &[
    "invalid_password",
    "invalid_password",
    "mfa_failed",
    "account_locked",
];
const REPORTS: &[(&str, &str)] = &[
    ("rpt-census", "Daily census"),
    ("rpt-discharges", "Discharge summary"),
    ("rpt-meds", "Medication administration"),
    ("rpt-billing", "Open claims"),
];
const RECIPIENTS: &[(&str, &str, &str)] = &[
    (
        "Acme Insurance",
        "claims@acme-insurance.example, 1 Main St, Springfield",
        "payment",
    ),
    (
        "County Public Health",
        "reports@health.county.example",
        "public_health",
    ),
    (
        "Dr Rivera (referral)",
        "Rivera Cardiology, 22 Elm Ave, Springfield",
        "treatment",
    ),
    (
        "Smith & Wesson LLP",
        "records@smith-law.example",
        "legal_request",
    ),
];
const ADMIN_ACTIONS: &[&str] = &[
    "admin.user.role.grant",
    "admin.user.disable",
    "admin.user.create",
    "admin.policy.update",
];

/// The kinds of event and their share of the traffic (per thousand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RecordRead,
    LabResultRead,
    RecordUpdate,
    NoteCreate,
    Prescription,
    LabImport,
    ClaimSubmit,
    Login,
    LoginFailure,
    Logout,
    Export,
    Disclosure,
    Admin,
}

const MIX: &[(Kind, u32)] = &[
    (Kind::RecordRead, 500),
    (Kind::LabResultRead, 60),
    (Kind::RecordUpdate, 130),
    (Kind::NoteCreate, 25),
    (Kind::Prescription, 30),
    (Kind::LabImport, 20),
    (Kind::ClaimSubmit, 50),
    (Kind::Login, 80),
    (Kind::LoginFailure, 25),
    (Kind::Logout, 45),
    (Kind::Export, 15),
    (Kind::Disclosure, 15),
    (Kind::Admin, 5),
];

/// SplitMix64: tiny, fast and good enough for workload data; not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for n far below 2^64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `per_thousand / 1000`.
    pub fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

/// A Zipf distribution over `0..n`: rank `r` has weight `1 / (r + 1)^s`. Sampled by binary
/// search in the cumulative table; ranks are then spread over the ids by a fixed permutation,
/// so the busiest clinician is not simply number 0.
#[derive(Debug)]
pub struct Zipf {
    cumulative: Vec<f64>,
    /// Multiplier of the rank-to-id permutation, coprime with `n`.
    spread: u64,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        assert!(n > 0, "a Zipf distribution needs at least one item");
        let mut cumulative = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        let n64 = n as u64;
        let spread = [7919u64, 7907, 104_729, 1]
            .into_iter()
            .find(|p| gcd(*p, n64) == 1)
            .expect("1 is coprime with everything");
        Zipf { cumulative, spread }
    }

    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The rank drawn (0 is the most frequent).
    pub fn rank(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.len() - 1)
    }

    /// The id drawn: a rank moved to its place by the permutation.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let n = self.len() as u64;
        ((self.rank(rng) as u64 * self.spread + n / 3) % n) as usize
    }
}

/// The ASCII letter an e-mail address uses for a letter of a name (`é` → `e`), or nothing
/// for the punctuation that addresses leave out.
fn ascii_fold(c: char) -> Option<char> {
    match c {
        'á' | 'à' | 'ä' => Some('a'),
        'é' | 'è' | 'ë' => Some('e'),
        'í' | 'ï' => Some('i'),
        'ó' | 'ö' | 'ø' => Some('o'),
        'ú' | 'ü' => Some('u'),
        '\'' | ' ' => None,
        c => Some(c),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A member of staff.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    email: String,
    name: String,
    role: &'static str,
    /// The address of their workstation.
    ip: String,
}

/// The people of one clinic, built from the seed and shared by every stream.
#[derive(Debug)]
pub struct Clinic {
    clinicians: Vec<Person>,
    admins: Vec<Person>,
    /// Patient names; a patient's id is `p-` and their number.
    patient_names: Vec<String>,
    actors: Zipf,
    patients: Zipf,
    seed: u64,
}

impl Clinic {
    pub fn new(seed: u64) -> Arc<Clinic> {
        let mut rng = Rng::new(seed ^ 0x636c_696e_6963); // "clinic"
        let person = |rng: &mut Rng, n: usize, id: String, role: &'static str| {
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            let login: String = format!("{first}.{last}")
                .to_lowercase()
                .chars()
                .filter_map(ascii_fold)
                .collect();
            Person {
                email: format!("{login}{n}@clinic.example"),
                name: format!("{first} {last}"),
                // Departments are /16s of 10.0.0.0/8; workstations are stable per person.
                ip: format!(
                    "10.{}.{}.{}",
                    1 + rng.below(12),
                    rng.below(256),
                    1 + rng.below(254)
                ),
                id,
                role,
            }
        };
        let clinicians = (0..CLINICIANS)
            .map(|n| {
                let mut roll = rng.below(1000) as u32;
                let role = ROLES
                    .iter()
                    .find(|(_, share)| {
                        let hit = roll < *share;
                        roll = roll.saturating_sub(*share);
                        hit
                    })
                    .map_or("nurse", |(role, _)| role);
                person(&mut rng, n, format!("u-{:04}", 1000 + n), role)
            })
            .collect();
        let admins = (0..ADMINS)
            .map(|n| person(&mut rng, n, format!("admin-{:02}", n + 1), "it_admin"))
            .collect();
        let patient_names = (0..PATIENTS)
            .map(|_| {
                let first = rng.pick(FIRST_NAMES);
                let last = rng.pick(LAST_NAMES);
                let initial = first.chars().next().expect("names are not empty");
                format!("{initial}. {last}")
            })
            .collect();
        Arc::new(Clinic {
            clinicians,
            admins,
            patient_names,
            actors: Zipf::new(CLINICIANS, ACTOR_SKEW),
            patients: Zipf::new(PATIENTS, PATIENT_SKEW),
            seed,
        })
    }

    /// The events of client `stream`: its own producers, clock and random numbers.
    pub fn stream(self: &Arc<Clinic>, stream: u64) -> EventStream {
        let rng = Rng::new(self.seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        let producers = APPS
            .iter()
            .map(|app| {
                (0..app.instances)
                    .map(|k| Producer {
                        app: app.name,
                        instance: format!("{}-s{stream}-{}", app.instance_prefix, k + 1),
                        seq: 0,
                    })
                    .collect()
            })
            .collect();
        EventStream {
            clinic: Arc::clone(self),
            rng,
            stream,
            clock_micros: CLOCK_START_MICROS,
            producers,
            sessions: vec![0; CLINICIANS + ADMINS],
            count: 0,
        }
    }
}

/// An application that produces audit events, with how many instances of it a stream runs.
struct App {
    name: &'static str,
    instance_prefix: &'static str,
    instances: usize,
    user_agent: &'static str,
    /// Whether it sends `occurred_at` (the billing batch job does not; the server's
    /// `received_at` is its event time).
    sends_time: bool,
    /// Whether it sends idempotency keys (the interactive apps retry on timeouts).
    idempotent: bool,
}

const EHR_WEB: usize = 0;
const EHR_MOBILE: usize = 1;
const PHARMACY: usize = 2;
const BILLING: usize = 3;
const LAB: usize = 4;
const SSO: usize = 5;

const APPS: &[App] = &[
    App {
        name: "ehr-web",
        instance_prefix: "pod",
        instances: 3,
        user_agent: "ehr-web/4.2.1 (Windows NT 10.0; Edge 131)",
        sends_time: true,
        idempotent: true,
    },
    App {
        name: "ehr-mobile",
        instance_prefix: "api",
        instances: 1,
        user_agent: "ehr-mobile/2.8.0 (iOS 17.4)",
        sends_time: true,
        idempotent: true,
    },
    App {
        name: "pharmacy",
        instance_prefix: "rx",
        instances: 1,
        user_agent: "rx-desk/3.1.0",
        sends_time: true,
        idempotent: false,
    },
    App {
        name: "billing",
        instance_prefix: "job",
        instances: 1,
        user_agent: "billing-svc/1.9.4",
        sends_time: false,
        idempotent: false,
    },
    App {
        name: "lab-gateway",
        instance_prefix: "hl7",
        instances: 1,
        user_agent: "lab-gateway/1.3.0 (hl7v2)",
        sends_time: true,
        idempotent: false,
    },
    App {
        name: "sso",
        instance_prefix: "idp",
        instances: 2,
        user_agent: "sso-gateway/5.0.2",
        sends_time: true,
        idempotent: true,
    },
];

/// One producer: `source.seq` counts up from 0 per `(app, instance)`.
#[derive(Debug, Clone)]
struct Producer {
    app: &'static str,
    instance: String,
    seq: u64,
}

/// The events of one client, in order; see the module documentation.
pub struct EventStream {
    clinic: Arc<Clinic>,
    rng: Rng,
    stream: u64,
    /// The simulated time of the last event (`occurred_at`).
    clock_micros: i64,
    /// Per app (indexed like [`APPS`]), its instances.
    producers: Vec<Vec<Producer>>,
    /// Per staff member (clinicians, then admins), their current session number; a login
    /// starts a new one.
    sessions: Vec<u32>,
    /// Events generated so far; makes request ids unique within the stream.
    count: u64,
}

impl EventStream {
    /// How many events this stream has generated.
    pub fn generated(&self) -> u64 {
        self.count
    }

    /// One event as a JSON document, ready for `POST /v1/events`.
    pub fn event(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(768);
        self.write_event(&mut out);
        out
    }

    /// `n` events as a JSON array, ready for `POST /v1/events/batch`.
    pub fn batch(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 640 + 2);
        self.write_batch(n, &mut out);
        out
    }

    /// Appends `n` events as a JSON array to `out`.
    pub fn write_batch(&mut self, n: usize, out: &mut Vec<u8>) {
        out.push(b'[');
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            self.write_event(out);
        }
        out.push(b']');
    }

    /// Appends one event, a JSON object, to `out`.
    pub fn write_event(&mut self, out: &mut Vec<u8>) {
        let clinic = Arc::clone(&self.clinic);
        let rng = &mut self.rng;
        self.count += 1;
        self.clock_micros += rng.below(2 * MEAN_GAP_MICROS) as i64;

        let kind = {
            let mut roll = rng.below(1000) as u32;
            MIX.iter()
                .find(|(_, share)| {
                    let hit = roll < *share;
                    roll = roll.saturating_sub(*share);
                    hit
                })
                .map_or(Kind::RecordRead, |(kind, _)| *kind)
        };
        let app = match kind {
            Kind::RecordRead | Kind::LabResultRead | Kind::RecordUpdate | Kind::NoteCreate => {
                if rng.chance(200) { EHR_MOBILE } else { EHR_WEB }
            }
            Kind::Export | Kind::Disclosure => EHR_WEB,
            Kind::Prescription => PHARMACY,
            Kind::ClaimSubmit => BILLING,
            Kind::LabImport => LAB,
            Kind::Login | Kind::LoginFailure | Kind::Logout | Kind::Admin => SSO,
        };
        let app_info = &APPS[app];
        let instance = rng.below(app_info.instances as u64) as usize;
        let producer = &mut self.producers[app][instance];
        let source_seq = producer.seq;
        producer.seq += 1;

        // The actor: a Zipf-drawn clinician, an admin, the lab interface, or (for a login
        // with an unknown user name) nobody known.
        let staff = match kind {
            Kind::Admin => {
                let n = rng.below(ADMINS as u64) as usize;
                Some((CLINICIANS + n, &clinic.admins[n]))
            }
            Kind::LabImport => None,
            _ => {
                let n = clinic.actors.sample(rng);
                Some((n, &clinic.clinicians[n]))
            }
        };
        let unknown_user = kind == Kind::LoginFailure && rng.chance(150);
        let patient = clinic.patients.sample(rng);

        let (action, activity) = match kind {
            Kind::RecordRead => ("patient.record.read", "read"),
            Kind::LabResultRead => ("patient.lab_result.read", "read"),
            Kind::RecordUpdate => ("patient.record.update", "update"),
            Kind::NoteCreate => ("patient.note.create", "create"),
            Kind::Prescription => ("patient.prescription.create", "create"),
            Kind::LabImport => ("lab.result.import", "create"),
            Kind::ClaimSubmit => ("billing.claim.submit", "create"),
            Kind::Login | Kind::LoginFailure => ("user.login", "login"),
            Kind::Logout => ("user.logout", "logout"),
            Kind::Export => ("report.export", "export"),
            Kind::Disclosure => ("patient.record.disclose", "disclose"),
            Kind::Admin => (*rng.pick(ADMIN_ACTIONS), "admin"),
        };
        // Reads are sometimes refused by the access policy (break-the-glass not used).
        let denied = kind == Kind::RecordRead && rng.chance(8);
        let (outcome, reason) = match kind {
            Kind::LoginFailure if unknown_user => ("failure", Some("unknown_user")),
            Kind::LoginFailure => ("failure", Some(*rng.pick(LOGIN_FAILURES))),
            _ if denied => ("failure", Some("permission_denied")),
            _ => ("success", None),
        };

        let _ = write!(out, r#"{{"action":"{action}","activity":"{activity}""#);
        let _ = write!(out, r#","outcome":"{outcome}""#);
        if let Some(reason) = reason {
            let _ = write!(out, r#","outcome_reason":"{reason}""#);
        }
        if app_info.sends_time {
            out.extend_from_slice(br#","occurred_at":""#);
            write_timestamp(out, self.clock_micros);
            out.push(b'"');
        }

        // actor
        match (staff, unknown_user) {
            (Some((_, person)), false) => {
                let _ = write!(
                    out,
                    r#","actor":{{"id":"{}","type":"user","email":"{}","name":"{}","roles":["{}"]}}"#,
                    person.id, person.email, person.name, person.role
                );
            }
            (Some((n, _)), true) => {
                let _ = write!(
                    out,
                    r#","actor":{{"id":"unknown:user{}","type":"anonymous"}}"#,
                    n * 7 + rng.below(7) as usize
                );
            }
            (None, _) => {
                let _ = write!(
                    out,
                    r#","actor":{{"id":"svc-lab-gateway","type":"service","name":"Lab interface"}}"#
                );
            }
        }

        // targets
        let patient_name = &clinic.patient_names[patient];
        match kind {
            Kind::RecordRead | Kind::LabResultRead | Kind::RecordUpdate | Kind::Disclosure => {
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"patient","id":"p-{patient:06}","name":"{patient_name}"}}]"#
                );
            }
            Kind::NoteCreate => {
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"patient","id":"p-{patient:06}","name":"{patient_name}"}},{{"type":"clinical_note","id":"note-{:x}-{:x}"}}]"#,
                    self.stream, self.count
                );
            }
            Kind::Prescription => {
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"patient","id":"p-{patient:06}"}},{{"type":"prescription","id":"rx-{:x}-{:x}"}}]"#,
                    self.stream, self.count
                );
            }
            Kind::LabImport => {
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"patient","id":"p-{patient:06}"}},{{"type":"lab_result","id":"lab-{:x}-{:x}"}}]"#,
                    self.stream, self.count
                );
            }
            Kind::ClaimSubmit => {
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"patient","id":"p-{patient:06}"}},{{"type":"claim","id":"clm-{:x}-{:x}"}}]"#,
                    self.stream, self.count
                );
            }
            Kind::Export => {
                let (id, name) = rng.pick(REPORTS);
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"report","id":"{id}","name":"{name}"}}]"#
                );
            }
            Kind::Admin => {
                let n = clinic.actors.sample(rng);
                let _ = write!(
                    out,
                    r#","targets":[{{"type":"user","id":"{}","name":"{}"}}]"#,
                    clinic.clinicians[n].id, clinic.clinicians[n].name
                );
            }
            Kind::Login | Kind::LoginFailure | Kind::Logout => {}
        }

        // context: where the request came from, and the session it belongs to
        let ip = match (staff, app) {
            // Unknown user names come from outside: credential stuffing from a few addresses.
            (_, _) if unknown_user => format!("203.0.113.{}", 1 + rng.below(8)),
            (Some(_), EHR_MOBILE) => {
                if rng.chance(300) {
                    format!("2001:db8:4::{:x}", 1 + rng.below(0xfffe))
                } else {
                    format!("172.16.{}.{}", rng.below(16), 1 + rng.below(254))
                }
            }
            (Some((_, person)), _) => person.ip.clone(),
            (None, _) => "10.20.0.15".to_string(),
        };
        let _ = write!(
            out,
            r#","context":{{"ip":"{ip}","user_agent":"{}","request_id":"req-{:x}-{:x}""#,
            app_info.user_agent, self.stream, self.count
        );
        if let Some((n, person)) = staff
            && !unknown_user
        {
            if kind == Kind::Login {
                self.sessions[n] += 1;
            }
            let _ = write!(
                out,
                r#","session_id":"s-{}-{}-{}""#,
                person.id, self.stream, self.sessions[n]
            );
        }
        if rng.chance(300) {
            let _ = write!(
                out,
                r#","trace_id":"{:016x}{:016x}""#,
                rng.next_u64(),
                rng.next_u64()
            );
        }
        out.push(b'}');

        let producer = &self.producers[app][instance];
        let _ = write!(
            out,
            r#","source":{{"app":"{}","instance":"{}","seq":{source_seq}}}"#,
            producer.app, producer.instance
        );
        if app_info.idempotent {
            let _ = write!(
                out,
                r#","idempotency_key":"req-{:x}-{:x}:{activity}""#,
                self.stream, self.count
            );
        }

        if kind == Kind::Disclosure {
            let (recipient, address, purpose) = rng.pick(RECIPIENTS);
            let _ = write!(
                out,
                r#","disclosure":{{"recipient":"{recipient}","recipient_address":"{address}","purpose":"{purpose}","description":"records of {patient_name} released on request"}}"#
            );
        }

        // details: what was touched and why
        match kind {
            Kind::RecordRead | Kind::RecordUpdate => {
                let first = rng.below(RECORD_FIELDS.len() as u64 - 2) as usize;
                let count = 1 + rng.below(3) as usize;
                out.extend_from_slice(br#","details":{"fields":["#);
                for (i, field) in RECORD_FIELDS[first..first + count].iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = write!(out, r#""{field}""#);
                }
                let _ = write!(out, r#"],"reason":"{}""#, rng.pick(PURPOSES));
                if kind == Kind::RecordUpdate {
                    let _ = write!(out, r#","changes":{}"#, 1 + rng.below(5));
                }
                out.push(b'}');
            }
            Kind::LabResultRead | Kind::LabImport => {
                let _ = write!(
                    out,
                    r#","details":{{"panel":"{}","abnormal":{}}}"#,
                    rng.pick(LAB_PANELS),
                    rng.chance(120)
                );
            }
            Kind::NoteCreate => {
                let _ = write!(
                    out,
                    r#","details":{{"note_type":"progress","words":{}}}"#,
                    40 + rng.below(400)
                );
            }
            Kind::Prescription => {
                let _ = write!(
                    out,
                    r#","details":{{"drug_class":"{}","refills":{},"controlled":{}}}"#,
                    rng.pick(DRUG_CLASSES),
                    rng.below(4),
                    rng.chance(60)
                );
            }
            Kind::ClaimSubmit => {
                let _ = write!(
                    out,
                    r#","details":{{"payer":"Acme Insurance","amount_cents":{},"codes":["99213"]}}"#,
                    2_000 + rng.below(50_000)
                );
            }
            Kind::Login | Kind::LoginFailure => {
                let _ = write!(
                    out,
                    r#","details":{{"method":"{}"}}"#,
                    rng.pick(LOGIN_METHODS)
                );
            }
            Kind::Export => {
                let _ = write!(
                    out,
                    r#","details":{{"format":"csv","rows":{},"reason":"operations"}}"#,
                    100 + rng.below(20_000)
                );
            }
            Kind::Disclosure => {
                let _ = write!(
                    out,
                    r#","details":{{"pages":{},"channel":"secure_email"}}"#,
                    1 + rng.below(40)
                );
            }
            Kind::Admin => {
                let _ = write!(
                    out,
                    r#","details":{{"ticket":"IT-{}"}}"#,
                    1000 + rng.below(9000)
                );
            }
            Kind::Logout => {}
        }
        out.push(b'}');
    }
}

/// Writes `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (the proleptic Gregorian
/// calendar, by Howard Hinnant's `civil_from_days`), without allocating.
fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use sealtrail_core::Timestamp;
    use sealtrail_core::event::{Activity, ActorType, Event, Outcome, parse_json};

    use super::*;

    fn events(seed: u64, stream: u64, n: usize) -> Vec<Event> {
        let clinic = Clinic::new(seed);
        let mut stream = clinic.stream(stream);
        (0..n)
            .map(|i| {
                let bytes = stream.event();
                Event::parse(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "event {i} is invalid: {e}\n{}",
                        String::from_utf8_lossy(&bytes)
                    )
                })
            })
            .collect()
    }

    #[test]
    fn every_event_is_valid_against_the_schema() {
        let parsed = events(7, 0, 20_000);
        assert_eq!(parsed.len(), 20_000);
    }

    #[test]
    fn a_batch_is_a_json_array_of_valid_events() {
        let clinic = Clinic::new(3);
        let bytes = clinic.stream(5).batch(1_000);
        let serde_json::Value::Array(values) = parse_json(&bytes).unwrap() else {
            panic!("a batch is a JSON array");
        };
        assert_eq!(values.len(), 1_000);
        for value in &values {
            Event::from_value(value).unwrap();
        }
    }

    #[test]
    fn the_same_seed_and_stream_give_the_same_bytes() {
        let a = Clinic::new(42).stream(1).batch(500);
        let b = Clinic::new(42).stream(1).batch(500);
        assert_eq!(a, b);
        let other_stream = Clinic::new(42).stream(2).batch(500);
        assert_ne!(a, other_stream);
        let other_seed = Clinic::new(43).stream(1).batch(500);
        assert_ne!(a, other_seed);
    }

    #[test]
    fn the_mix_is_a_clinics_mix() {
        let parsed = events(11, 0, 50_000);
        let count = |f: &dyn Fn(&Event) -> bool| parsed.iter().filter(|e| f(e)).count();
        let reads = count(&|e| e.action == "patient.record.read");
        let updates = count(&|e| e.action == "patient.record.update");
        let logins = count(&|e| e.activity == Some(Activity::Login));
        let failed_logins =
            count(&|e| e.activity == Some(Activity::Login) && e.outcome == Outcome::Failure);
        let exports = count(&|e| e.activity == Some(Activity::Export));
        let disclosures = count(&|e| e.disclosure.is_some());
        let admin = count(&|e| e.activity == Some(Activity::Admin));
        let anonymous = count(&|e| e.actor.kind == Some(ActorType::Anonymous));
        // Shares per thousand: reads 500, updates 130, logins 105 of which 25 fail, exports
        // and disclosures 15 each, admin 5; bounds are wide enough for sampling noise.
        assert!((23_000..27_000).contains(&reads), "reads {reads}");
        assert!((5_500..7_500).contains(&updates), "updates {updates}");
        assert!((4_500..6_000).contains(&logins), "logins {logins}");
        assert!(
            (900..1_600).contains(&failed_logins),
            "failed {failed_logins}"
        );
        assert!(reads > updates && updates > logins && logins > exports);
        assert!((450..1_100).contains(&exports), "exports {exports}");
        assert!(
            (450..1_100).contains(&disclosures),
            "disclosures {disclosures}"
        );
        assert!((100..400).contains(&admin), "admin {admin}");
        assert!(
            anonymous > 0 && anonymous < failed_logins,
            "anonymous {anonymous}"
        );
    }

    #[test]
    fn emails_are_ascii_and_names_are_not_always() {
        let parsed = events(13, 0, 5_000);
        let emails: Vec<&str> = parsed
            .iter()
            .filter_map(|e| e.actor.email.as_deref())
            .collect();
        assert!(emails.len() > 4_000);
        assert!(
            emails
                .iter()
                .all(|e| e.is_ascii() && e.ends_with("@clinic.example"))
        );
        assert!(
            parsed
                .iter()
                .filter_map(|e| e.actor.name.as_deref())
                .any(|n| !n.is_ascii())
        );
    }

    #[test]
    fn actors_and_patients_are_skewed() {
        let parsed = events(5, 0, 50_000);
        let mut actors: HashMap<&str, usize> = HashMap::new();
        let mut patients: HashMap<&str, usize> = HashMap::new();
        for event in &parsed {
            *actors.entry(event.actor.id.as_str()).or_default() += 1;
            for target in &event.targets {
                if target.kind.as_deref() == Some("patient") {
                    *patients.entry(target.id.as_deref().unwrap()).or_default() += 1;
                }
            }
        }
        let share_of_top = |counts: &HashMap<&str, usize>, top: usize| {
            let mut sorted: Vec<usize> = counts.values().copied().collect();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            sorted.iter().take(top).sum::<usize>() as f64 / sorted.iter().sum::<usize>() as f64
        };
        // Zipf(1.0) over 400: the top 10% of clinicians do over half of the work...
        assert!(
            share_of_top(&actors, 40) > 0.5,
            "{}",
            share_of_top(&actors, 40)
        );
        // ...and many of them still appear at all.
        assert!(actors.len() > 300, "{} actors", actors.len());
        // Zipf(0.8) over 40,000 patients: a long tail, but a visible head.
        assert!(patients.len() > 8_000, "{} patients", patients.len());
        assert!(
            share_of_top(&patients, 400) > 0.2,
            "{}",
            share_of_top(&patients, 400)
        );
    }

    #[test]
    fn source_seq_counts_up_per_producer_without_gaps() {
        let mut parsed = events(9, 3, 10_000);
        parsed.extend(events(9, 4, 10_000));
        let mut next: HashMap<(String, String), u64> = HashMap::new();
        for event in &parsed {
            let source = event.source.as_ref().expect("every event names its source");
            let key = (
                source.app.clone().unwrap(),
                source.instance.clone().unwrap(),
            );
            let expected = next.entry(key).or_default();
            assert_eq!(source.seq, Some(*expected), "{source:?}");
            *expected += 1;
        }
        // Two streams never share a producer: each has its own instances.
        assert!(next.keys().any(|(_, i)| i.contains("-s3-")));
        assert!(next.keys().any(|(_, i)| i.contains("-s4-")));
    }

    #[test]
    fn request_ids_and_idempotency_keys_are_unique_across_streams() {
        let mut parsed = events(1, 0, 5_000);
        parsed.extend(events(1, 1, 5_000));
        let mut requests = HashSet::new();
        let mut keys = HashSet::new();
        for event in &parsed {
            let context = event.context.as_ref().unwrap();
            assert!(requests.insert(context.request_id.clone().unwrap()));
            if let Some(key) = &event.idempotency_key {
                assert!(keys.insert(key.clone()), "{key} repeated");
            }
        }
        assert!(keys.len() > 5_000, "{} events had keys", keys.len());
    }

    #[test]
    fn timestamps_are_written_like_the_core_writes_them() {
        let mut rng = Rng::new(1);
        for micros in [
            0,
            CLOCK_START_MICROS,
            951_782_400_000_001,
            4_107_542_399_999_999,
        ]
        .into_iter()
        .chain((0..1_000).map(|_| rng.below(253_402_300_799_999_999) as i64))
        {
            let mut out = Vec::new();
            write_timestamp(&mut out, micros);
            let expected = Timestamp::from_unix_micros(micros).unwrap().to_rfc3339();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn zipf_ranks_are_ordered_by_frequency_and_ids_cover_the_range() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = Rng::new(2);
        let mut ranks = [0usize; 100];
        let mut ids = HashSet::new();
        for _ in 0..100_000 {
            ranks[zipf.rank(&mut rng)] += 1;
            ids.insert(zipf.sample(&mut rng));
        }
        assert!(ranks[0] > ranks[1] && ranks[1] > ranks[9] && ranks[9] > ranks[99]);
        // Rank 0 has weight 1 / H(100) ≈ 19%.
        assert!((17_000..21_500).contains(&ranks[0]), "{}", ranks[0]);
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|&id| id < 100));
    }
}
