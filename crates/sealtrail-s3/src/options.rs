//! What an S3 target is told: its bucket and prefix (from an `s3://bucket/prefix` URL), where
//! the server is, whom to sign as, and how long each object stays locked. Everything that is
//! not set in [`S3Options`] comes from the standard AWS variables, read once when the target
//! is opened.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use sealtrail_archive::TargetError;
use sealtrail_archive::target::Result;
use sealtrail_archive::target::check_key;

/// The server to talk to instead of AWS, e.g. `http://127.0.0.1:8333`.
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL";
/// The region to sign for; `AWS_DEFAULT_REGION` is read when it is unset.
pub const ENV_REGION: &str = "AWS_REGION";
pub const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Temporary credentials' token, read with the key from the environment.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// `true` for path-style addressing (`endpoint/bucket/key`) whatever the endpoint.
pub const ENV_PATH_STYLE: &str = "SEALTRAIL_S3_PATH_STYLE";

/// The region signed for when neither the options nor the environment name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How long an archived object is locked by default: seven years of 365 days and the two leap
/// days they contain at most, 2557 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(2557 * 24 * 60 * 60);

/// How many uploads [`Target::put_new_all`](sealtrail_archive::Target::put_new_all) keeps in
/// flight by default.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How an S3 target is reached and how it locks what it writes. `None` fields are taken from
/// the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `SEALTRAIL_S3_PATH_STYLE`).
#[derive(Clone)]
pub struct S3Options {
    /// The server's URL (`http://` or `https://`); AWS's own endpoint for the region if unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Path-style addressing on or off. Unset: on when the endpoint's host is an IP address or
    /// `SEALTRAIL_S3_PATH_STYLE=true`, otherwise virtual-hosted style (`bucket.endpoint`).
    pub path_style: Option<bool>,
    /// Each object is locked in COMPLIANCE mode until the moment it is written plus this.
    pub retention: Duration,
    /// Write to a bucket without Object Lock (objects then carry no lock). Off by default: a
    /// bucket without Object Lock is refused with [`TargetError::NotLocked`].
    pub allow_unlocked: bool,
    /// Uploads in flight at once in `put_new_all`.
    pub concurrency: usize,
    /// Keys asked for per ListObjectsV2 page; the server's default (1000 on AWS) if unset.
    pub list_page_size: Option<i32>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: None,
            retention: DEFAULT_RETENTION,
            allow_unlocked: false,
            concurrency: DEFAULT_CONCURRENCY,
            list_page_size: None,
        }
    }
}

// The secret and the session token are never printed, not even in a debug dump.
impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("path_style", &self.path_style)
            .field("retention", &self.retention)
            .field("allow_unlocked", &self.allow_unlocked)
            .field("concurrency", &self.concurrency)
            .field("list_page_size", &self.list_page_size)
            .finish()
    }
}

/// A bucket and the prefix under which a target's keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl Location {
    /// Reads `s3://bucket` or `s3://bucket/prefix` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| {
            TargetError::Config(format!(
                "{url:?} is not an S3 archive URL ({why}); write it as s3://bucket/prefix"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(bad(
                "a bucket name has only letters, digits, '.', '-' and '_'",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|_| bad("the prefix has an empty, '.' or '..' part"))?;
        }
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The URL as the operator reads it back: `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The object key of a target key.
    pub fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

/// The options with the environment filled in: everything the client is built from.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub path_style: bool,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// Fills what `options` leaves unset from `env` (the process environment, or a table in
    /// tests). `target` names the target in error messages.
    pub fn new(
        target: &str,
        options: &S3Options,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Resolved> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let endpoint = match options.endpoint.clone().or_else(|| env(ENV_ENDPOINT)) {
            Some(e) => {
                let e = e.trim().trim_end_matches('/').to_string();
                if !(e.starts_with("http://") || e.starts_with("https://")) || host(&e).is_empty() {
                    return Err(TargetError::Config(format!(
                        "{target}: the S3 endpoint {e:?} is not an http:// or https:// URL \
                         (set it with {ENV_ENDPOINT}, e.g. http://127.0.0.1:8333)"
                    )));
                }
                Some(e)
            }
            None => None,
        };
        let region = options
            .region
            .clone()
            .or_else(|| env(ENV_REGION))
            .or_else(|| env(ENV_DEFAULT_REGION))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        // The key, the secret and the token are taken together, from the options or from the
        // environment, so that a key given in the options is never signed with another's
        // secret.
        let (access_key_id, secret_access_key, session_token) = match &options.access_key_id {
            Some(id) => (
                Some(id.clone()),
                options.secret_access_key.clone(),
                options.session_token.clone(),
            ),
            None => (
                env(ENV_ACCESS_KEY_ID),
                options
                    .secret_access_key
                    .clone()
                    .or_else(|| env(ENV_SECRET_ACCESS_KEY)),
                options
                    .session_token
                    .clone()
                    .or_else(|| env(ENV_SESSION_TOKEN)),
            ),
        };
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key)
        else {
            return Err(TargetError::Config(format!(
                "{target}: no S3 credentials: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}"
            )));
        };
        let path_style = match options.path_style {
            Some(p) => p,
            None => {
                let forced = match env(ENV_PATH_STYLE) {
                    None => false,
                    Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => {
                            return Err(TargetError::Config(format!(
                                "{ENV_PATH_STYLE}={v:?}: write true or false"
                            )));
                        }
                    },
                };
                forced || endpoint.as_deref().is_some_and(host_is_ip)
            }
        };
        Ok(Resolved {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token,
            path_style,
        })
    }
}

/// The host of an `http(s)://` URL: between the scheme and the port or path, without user
/// information; an IPv6 address keeps its brackets.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or("")
}

/// Whether the endpoint's host is an IPv4 or IPv6 address, where a bucket cannot be a
/// subdomain and path-style addressing is the only one that works.
fn host_is_ip(endpoint: &str) -> bool {
    let h = host(endpoint);
    h.starts_with('[') || h.parse::<Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    const CREDS: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
    ];

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        let l = Location::parse("s3://audit/sealtrail/prod/").unwrap();
        assert_eq!(l.bucket, "audit");
        assert_eq!(l.prefix, "sealtrail/prod");
        assert_eq!(l.url(), "s3://audit/sealtrail/prod");
        assert_eq!(l.object_key("t/x/1"), "sealtrail/prod/t/x/1");
        let root = Location::parse("s3://audit").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.object_key("t/x/1"), "t/x/1");
        assert_eq!(Location::parse("s3://audit/").unwrap(), root);
        for bad in [
            "audit/x",
            "s3://",
            "s3:///x",
            "s3://a b/x",
            "s3://audit/../x",
            "s3://audit//x",
            "https://audit/x",
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(matches!(err, TargetError::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn path_style_when_the_endpoint_is_an_ip_address_or_when_asked() {
        let opts = S3Options::default();
        let with = |endpoint: &str| {
            let env = env_of(&[CREDS[0], CREDS[1], ("AWS_ENDPOINT_URL", endpoint)]);
            Resolved::new("t", &opts, env).unwrap().path_style
        };
        assert!(with("http://127.0.0.1:8333"));
        assert!(with("http://user@10.0.0.7:9000/"));
        assert!(with("http://[::1]:8333"));
        assert!(!with("https://s3.eu-west-1.amazonaws.com"));
        assert!(!with("http://minio.internal:9000"));
        let forced = Resolved::new(
            "t",
            &opts,
            env_of(&[
                CREDS[0],
                CREDS[1],
                ("AWS_ENDPOINT_URL", "http://minio.internal:9000"),
                ("SEALTRAIL_S3_PATH_STYLE", "true"),
            ]),
        )
        .unwrap();
        assert!(forced.path_style);
        let no_endpoint = Resolved::new("t", &opts, env_of(CREDS)).unwrap();
        assert!(!no_endpoint.path_style);
        assert_eq!(no_endpoint.endpoint, None);
        let overridden = S3Options {
            path_style: Some(false),
            endpoint: Some("http://127.0.0.1:1".into()),
            ..S3Options::default()
        };
        assert!(
            !Resolved::new("t", &overridden, env_of(CREDS))
                .unwrap()
                .path_style
        );
        let err = Resolved::new(
            "t",
            &opts,
            env_of(&[CREDS[0], CREDS[1], ("SEALTRAIL_S3_PATH_STYLE", "maybe")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("SEALTRAIL_S3_PATH_STYLE"), "{err}");
    }

    #[test]
    fn options_override_the_environment_and_credentials_come_as_a_pair() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "envtoken"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://10.1.1.1:9000/"),
        ]);
        let from_env = Resolved::new("t", &S3Options::default(), &env).unwrap();
        assert_eq!(from_env.access_key_id, "ENVKEY");
        assert_eq!(from_env.session_token.as_deref(), Some("envtoken"));
        assert_eq!(from_env.region, "eu-central-1");
        assert_eq!(from_env.endpoint.as_deref(), Some("http://10.1.1.1:9000"));
        let opts = S3Options {
            access_key_id: Some("OPTKEY".into()),
            secret_access_key: Some("optsecret".into()),
            region: Some("us-west-2".into()),
            endpoint: Some("https://s3.example.net".into()),
            ..S3Options::default()
        };
        let from_opts = Resolved::new("t", &opts, &env).unwrap();
        assert_eq!(from_opts.access_key_id, "OPTKEY");
        assert_eq!(from_opts.secret_access_key, "optsecret");
        assert_eq!(
            from_opts.session_token, None,
            "the environment's token belongs to its own key"
        );
        assert_eq!(from_opts.region, "us-west-2");
        assert_eq!(
            from_opts.endpoint.as_deref(),
            Some("https://s3.example.net")
        );

        let defaults = Resolved::new("t", &S3Options::default(), env_of(CREDS)).unwrap();
        assert_eq!(defaults.region, DEFAULT_REGION);
        let regional = Resolved::new(
            "t",
            &S3Options::default(),
            env_of(&[CREDS[0], CREDS[1], ("AWS_DEFAULT_REGION", "ap-south-1")]),
        )
        .unwrap();
        assert_eq!(regional.region, "ap-south-1");
    }

    #[test]
    fn missing_credentials_or_a_bad_endpoint_are_named_and_secrets_never_printed() {
        let err = Resolved::new(
            "s3://b/p",
            &S3Options::default(),
            env_of(&[("AWS_ACCESS_KEY_ID", "AKID")]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("s3://b/p") && text.contains("AWS_SECRET_ACCESS_KEY"),
            "{text}"
        );
        let err = Resolved::new(
            "s3://b/p",
            &S3Options {
                endpoint: Some("127.0.0.1:8333".into()),
                ..S3Options::default()
            },
            env_of(CREDS),
        )
        .unwrap_err();
        assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");

        let opts = S3Options {
            secret_access_key: Some("wJalrXUtnFEMI".into()),
            session_token: Some("tok3n".into()),
            ..S3Options::default()
        };
        let dump = format!("{opts:?}");
        assert!(
            !dump.contains("wJalrXUtnFEMI") && !dump.contains("tok3n"),
            "{dump}"
        );
        let resolved = Resolved::new("t", &S3Options::default(), env_of(CREDS)).unwrap();
        assert!(!format!("{resolved:?}").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn the_default_retention_is_seven_years() {
        assert_eq!(DEFAULT_RETENTION.as_secs() / 86_400, 7 * 365 + 2);
        assert!(!S3Options::default().allow_unlocked);
    }
}
