//! `[apps.NAME] kind = "odata"`: an OData v4 service as an app. Its url is the
//! service root; a map's `table` is an entity set. Secrets come from the
//! environment or a file, as a database password does.

use super::parse::{join, Reader};
use toml::{Table, Value as Toml};

/// How dualsync talks to one OData service.
#[derive(Clone, Debug, PartialEq)]
pub struct ODataApp {
    /// The service root (`https://host/api/data/v9.2`), without a trailing slash.
    pub url: String,
    pub auth: ODataAuth,
    pub dialect: Dialect,
    /// Rows per page read (`$top`, and `Prefer: odata.maxpagesize` where the
    /// service takes it); a service that pages smaller is followed.
    pub page_size: usize,
    /// Operations per changeset of a `$batch`: one atomic group at the service.
    pub changeset_size: usize,
    /// Seconds one request may take before it is abandoned (and retried).
    pub timeout_seconds: u64,
    /// Requests to this service at once, over all of dualsync's connections.
    pub max_requests: usize,
    /// The column each entity set stamps with the time of its last change
    /// (`modifiedAt`, Dataverse's `modifiedon`): live sync polls it.
    pub changed: Option<String>,
    /// How long after its timestamp a change is read: a change that commits
    /// this late after its stamp is still never passed by the cursor.
    pub change_window_seconds: u64,
    /// How often live sync scans the keys of a polled entity set for deletes.
    pub delete_scan_seconds: u64,
    /// Rows sorted in memory at once where the service does not sort keys in
    /// byte order (the rest spill to disk in runs of this many).
    pub sort_run_rows: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ODataAuth {
    None,
    /// HTTP basic: the user here, the password from `password_env`/`password_file`.
    Basic {
        user: String,
    },
    /// A bearer token from `token_env`/`token_file`.
    Bearer,
    /// The client-credentials grant: the secret from `client_secret_env`/`client_secret_file`.
    OAuth2 {
        token_url: String,
        client_id: String,
        scope: Option<String>,
    },
}

/// What a kind of service does its own way: a small table of capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// OData v4 as the standard writes it (SAP CAP, S/4HANA and most others).
    Standard,
    /// Microsoft Dataverse's Web API.
    Dataverse,
    /// Dynamics 365 finance and operations data entities.
    FinanceOperations,
}

pub const DEFAULT_PAGE_SIZE: usize = 1000;
pub const DEFAULT_CHANGESET_SIZE: usize = 100;

/// The keys of each kind of auth.
const BASIC_KEYS: [&str; 3] = ["user", "password_env", "password_file"];
const BEARER_KEYS: [&str; 2] = ["token_env", "token_file"];
const OAUTH2_KEYS: [&str; 5] = ["token_url", "client_id", "client_secret_env", "client_secret_file", "scope"];
/// The other keys an OData app takes.
const SETTINGS: [&str; 13] = [
    "url",
    "kind",
    "capture",
    "auth",
    "dialect",
    "page_size",
    "changeset_size",
    "timeout_seconds",
    "max_requests",
    "changed",
    "change_window_seconds",
    "delete_scan_seconds",
    "sort_run_rows",
];

/// The secret's setting and its value, as the config names them (`token_env`, …).
pub struct SecretSetting {
    pub env: Option<String>,
    pub file: Option<String>,
    /// `password_env`, `token_env` or `client_secret_env`, for messages.
    pub env_key: &'static str,
}

impl Reader<'_> {
    /// Reads an OData app's settings (the url is checked here too).
    pub(super) fn odata_app(&mut self, t: &Table, path: &str, url: &str) -> Option<(ODataApp, SecretSetting)> {
        let allowed: Vec<&str> = SETTINGS.iter().chain(&BASIC_KEYS).chain(&BEARER_KEYS).chain(&OAUTH2_KEYS).copied().collect();
        self.unknown_keys(t, path, &allowed, "an OData app takes url, kind, auth and the settings of docs/config.md");
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            self.err(
                &join(path, "url"),
                "an OData app's url must start with https:// (or http://)",
                "give the service root, such as url = \"https://host/odata/v4/service\"",
            );
            return None;
        }
        if url.contains('?') || url.contains('#') {
            self.err(&join(path, "url"), "the service root must not carry a query", "remove what follows ? from the url");
            return None;
        }
        let secret = |r: &mut Self, env: &'static str, file: &'static str| SecretSetting {
            env: r.string(t, env, path),
            file: r.string(t, file, path),
            env_key: env,
        };
        let (auth, secret) = match self.string(t, "auth", path).as_deref() {
            None | Some("none") => (ODataAuth::None, SecretSetting { env: None, file: None, env_key: "password_env" }),
            Some("basic") => {
                let user = self.required_string(t, "user", path, "auth = \"basic\" needs user = \"NAME\" and password_env = \"VAR\"");
                (ODataAuth::Basic { user: user.unwrap_or_default() }, secret(self, "password_env", "password_file"))
            }
            Some("bearer") => (ODataAuth::Bearer, secret(self, "token_env", "token_file")),
            Some("oauth2") => {
                let hint = "auth = \"oauth2\" needs token_url, client_id and client_secret_env (the client-credentials grant)";
                let token_url = self.required_string(t, "token_url", path, hint).unwrap_or_default();
                let client_id = self.required_string(t, "client_id", path, hint).unwrap_or_default();
                let scope = self.string(t, "scope", path);
                if !token_url.is_empty() && !(token_url.starts_with("https://") || token_url.starts_with("http://")) {
                    self.err(
                        &join(path, "token_url"),
                        "must be an https:// url",
                        "give the token endpoint, such as https://login.microsoftonline.com/TENANT/oauth2/v2.0/token",
                    );
                }
                (ODataAuth::OAuth2 { token_url, client_id, scope }, secret(self, "client_secret_env", "client_secret_file"))
            }
            Some(other) => {
                self.err(
                    &join(path, "auth"),
                    format!("{other:?} is not a way of signing in"),
                    "write auth = \"none\", \"basic\", \"bearer\" or \"oauth2\"",
                );
                return None;
            }
        };
        let needs_secret = auth != ODataAuth::None;
        if needs_secret && secret.env.is_none() && secret.file.is_none() {
            let file_key = secret.env_key.replace("_env", "_file");
            self.err(
                path,
                format!("{} is missing", secret.env_key),
                format!("set {} = \"VAR\" (or {file_key}): the secret never goes in this file", secret.env_key),
            );
        }
        for &key in BASIC_KEYS.iter().chain(&BEARER_KEYS).chain(&OAUTH2_KEYS) {
            let used = match &auth {
                ODataAuth::None => false,
                ODataAuth::Basic { .. } => BASIC_KEYS.contains(&key),
                ODataAuth::Bearer => BEARER_KEYS.contains(&key),
                ODataAuth::OAuth2 { .. } => OAUTH2_KEYS.contains(&key),
            };
            if !used && t.contains_key(key) {
                self.err(&join(path, key), format!("{key} does nothing with this auth"), "remove it, or set the auth that uses it");
            }
        }
        let dialect = match self.string(t, "dialect", path).as_deref() {
            None | Some("standard") => Dialect::Standard,
            Some("dataverse") => Dialect::Dataverse,
            Some("finance_operations") => Dialect::FinanceOperations,
            Some(other) => {
                self.err(
                    &join(path, "dialect"),
                    format!("{other:?} is not a dialect dualsync knows"),
                    "write dialect = \"standard\", \"dataverse\" or \"finance_operations\"",
                );
                Dialect::Standard
            }
        };
        let changeset_max = if dialect == Dialect::Dataverse { 1000 } else { usize::MAX };
        let changeset_size = self.positive(t, "changeset_size", path, DEFAULT_CHANGESET_SIZE);
        if changeset_size > changeset_max {
            self.err(
                &join(path, "changeset_size"),
                format!("Dataverse takes at most {changeset_max} operations per $batch"),
                "set changeset_size = 1000 or less",
            );
        }
        let changed = self.string(t, "changed", path);
        let app = ODataApp {
            url: url.trim_end_matches('/').to_string(),
            auth,
            dialect,
            page_size: self.positive(t, "page_size", path, DEFAULT_PAGE_SIZE),
            changeset_size,
            timeout_seconds: self.positive(t, "timeout_seconds", path, 60) as u64,
            max_requests: self.positive(t, "max_requests", path, 4),
            changed,
            change_window_seconds: match t.get("change_window_seconds") {
                None => 5,
                Some(Toml::Integer(n)) if *n >= 0 => *n as u64,
                Some(_) => {
                    self.err(
                        &join(path, "change_window_seconds"),
                        "must be a whole number of seconds, 0 or more",
                        "remove it for the default (5)",
                    );
                    5
                }
            },
            delete_scan_seconds: self.positive(t, "delete_scan_seconds", path, 300) as u64,
            sort_run_rows: self.positive(t, "sort_run_rows", path, 100_000),
        };
        Some((app, secret))
    }
}
