//! Reads `dualsync.toml` into [`Config`], collecting every mistake with its
//! key path, line and a fix, instead of stopping at the first one.

use super::locate::line_of;
use super::*;
use toml::{Table, Value as Toml};

pub fn parse_config(source: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let mut r = Reader { file: file.display().to_string(), source, errors: Vec::new() };
    let root: Table = match source.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let line = e.span().map(|s| source[..s.start.min(source.len())].lines().count().max(1));
            return Err(ConfigErrors(vec![ConfigError {
                file: r.file,
                line,
                path: String::new(),
                message: format!("not valid TOML: {}", e.message().trim()),
                hint: "fix the syntax at that line (strings need quotes, tables [name], arrays of tables [[maps]])".into(),
            }]));
        }
    };
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    r.unknown_keys(&root, "", &["state", "apps", "maps"], "top-level keys are [state], [apps.NAME] and [[maps]]");

    let state = r.state(root.get("state"), &base_dir);
    let apps = r.apps(root.get("apps"), &base_dir);
    let app_names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    let mut maps = Vec::new();
    match root.get("maps") {
        None => {}
        Some(Toml::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("maps[{i}]");
                match item {
                    Toml::Table(t) => {
                        if let Some(m) = r.map(t, i, &path, &app_names) {
                            maps.push(m);
                        }
                    }
                    _ => r.err(&path, "each map must be a table", "write each map as a [[maps]] section"),
                }
            }
        }
        Some(_) => r.err("maps", "maps must be an array of tables", "write each map as a [[maps]] section"),
    }
    r.cross_map_checks(&maps);

    if r.errors.is_empty() {
        Ok(Config { file: file.to_path_buf(), state, apps, maps })
    } else {
        Err(ConfigErrors(r.errors))
    }
}

pub(super) struct Reader<'a> {
    file: String,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    pub(super) fn err(&mut self, path: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: line_of(self.source, path),
            path: path.to_string(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub(super) fn unknown_keys(&mut self, t: &Table, path: &str, allowed: &[&str], hint: &str) {
        for key in t.keys() {
            if !allowed.contains(&key.as_str()) {
                let full = join(path, key);
                self.err(&full, format!("unknown key {key:?}"), format!("{hint}; allowed here: {}", allowed.join(", ")));
            }
        }
    }

    pub(super) fn string(&mut self, t: &Table, key: &str, path: &str) -> Option<String> {
        match t.get(key) {
            None => None,
            Some(Toml::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(&join(path, key), format!("must be a string, found {}", other.type_str()), "put the value in double quotes");
                None
            }
        }
    }

    pub(super) fn required_string(&mut self, t: &Table, key: &str, path: &str, hint: &str) -> Option<String> {
        let v = self.string(t, key, path);
        if v.is_none() && !t.contains_key(key) {
            self.err(path, format!("{key} is missing"), hint.to_string());
        }
        v
    }

    fn strings(&mut self, t: &Table, key: &str, path: &str) -> Option<Vec<String>> {
        match t.get(key)? {
            Toml::String(s) => Some(vec![s.clone()]),
            Toml::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Toml::String(s) => out.push(s.clone()),
                        _ => self.err(&format!("{}[{i}]", join(path, key)), "must be a column name in quotes", ""),
                    }
                }
                Some(out)
            }
            _ => {
                self.err(&join(path, key), "must be a column name or a list of them", "write key = [\"Col1\", \"Col2\"]");
                None
            }
        }
    }

    pub(super) fn positive(&mut self, t: &Table, key: &str, path: &str, default: usize) -> usize {
        match t.get(key) {
            None => default,
            Some(Toml::Integer(n)) if *n >= 1 => *n as usize,
            Some(_) => {
                self.err(&join(path, key), "must be a whole number of at least 1", format!("remove it for the default ({default})"));
                default
            }
        }
    }

    fn state(&mut self, value: Option<&Toml>, base_dir: &Path) -> StateConfig {
        let mut url = DEFAULT_STATE_URL.to_string();
        let mut password_env = None;
        let mut lease_seconds = super::DEFAULT_LEASE_SECONDS;
        let mut chunk_rows = super::DEFAULT_CHUNK_ROWS;
        let mut retention_days = None;
        match value {
            None => {}
            Some(Toml::Table(t)) => {
                self.unknown_keys(
                    t,
                    "state",
                    &["url", "password_env", "lease_seconds", "chunk_rows", "retention_days"],
                    "[state] takes url, password_env, lease_seconds, chunk_rows and retention_days",
                );
                if let Some(u) = self.string(t, "url", "state") {
                    url = u;
                }
                password_env = self.string(t, "password_env", "state");
                match t.get("lease_seconds") {
                    None => {}
                    Some(Toml::Integer(n)) if (2..=3600).contains(n) => lease_seconds = *n as u64,
                    Some(_) => self.err(
                        "state.lease_seconds",
                        "must be a whole number of seconds from 2 to 3600",
                        format!("remove it for the default ({})", super::DEFAULT_LEASE_SECONDS),
                    ),
                }
                match t.get("chunk_rows") {
                    None => {}
                    Some(Toml::Integer(n)) if *n >= 100 => chunk_rows = *n as u64,
                    Some(_) => self.err(
                        "state.chunk_rows",
                        "must be a whole number of rows, 100 or more",
                        format!("remove it for the default ({})", super::DEFAULT_CHUNK_ROWS),
                    ),
                }
                match t.get("retention_days") {
                    None => {}
                    Some(Toml::Integer(n)) if (1..=36_500).contains(n) => retention_days = Some(*n as u32),
                    Some(_) => self.err(
                        "state.retention_days",
                        "must be a whole number of days from 1 to 36500",
                        "remove it to keep the error log until `dualsync errors purge`",
                    ),
                }
            }
            Some(_) => self.err("state", "state must be a table", "write [state] followed by url = \"sqlite://...\""),
        }
        if redact_url(&url) != url {
            self.err("state.url", "the URL contains a password", "remove it from the file and set password_env = \"VAR\" instead");
        }
        let url = match DatabaseUrl::parse(&url, base_dir) {
            Ok(DatabaseUrl::Mysql(_)) => {
                self.err(
                    "state.url",
                    "the state store can be SQLite or PostgreSQL, not MySQL",
                    "use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                );
                DatabaseUrl::Sqlite(base_dir.join(".dualsync/state.db"))
            }
            Ok(u) => u,
            Err(e) => {
                self.err("state.url", e, "");
                DatabaseUrl::Sqlite(base_dir.join(".dualsync/state.db"))
            }
        };
        StateConfig { url, password_env, lease_seconds, chunk_rows, retention_days }
    }

    fn apps(&mut self, value: Option<&Toml>, base_dir: &Path) -> Vec<AppConfig> {
        let Some(Toml::Table(apps)) = value else {
            self.err("apps", "no apps are defined", "add two [apps.NAME] sections, each with url = \"sqlite://NAME.db\"");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, v) in apps {
            let path = format!("apps.{name}");
            let Toml::Table(t) = v else {
                self.err(&path, "an app must be a table", format!("write [apps.{name}] followed by url = ..."));
                continue;
            };
            let kind = self.string(t, "kind", &path);
            if kind.as_deref() == Some("odata") {
                self.odata_app_entry(t, name, &path, &mut out);
                continue;
            }
            self.unknown_keys(
                t,
                &path,
                &["url", "kind", "password_env", "password_file", "capture"],
                "an app takes url, password_env, password_file and capture (an OData service: kind = \"odata\" and its own keys)",
            );
            let url = self.required_string(t, "url", &path, "add url = \"sqlite://PATH\" (or postgres://…, mysql://…)");
            if let Some(kind) = &kind {
                let scheme = url.as_deref().and_then(|u| DatabaseUrl::parse(u, base_dir).ok()).map(|u| u.kind());
                if !matches!(kind.as_str(), "sqlite" | "postgres" | "mysql") {
                    self.err(
                        &join(&path, "kind"),
                        format!("{kind:?} is not a kind of app"),
                        "write kind = \"odata\" for an OData service, or leave kind out: a database's url says its kind",
                    );
                } else if scheme.is_some_and(|s| s != kind) {
                    self.err(
                        &join(&path, "kind"),
                        format!("kind = {kind:?} but the url is a {} url", scheme.unwrap_or_default()),
                        "leave kind out: a database's url says its kind",
                    );
                }
            }
            if url.as_deref().is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) {
                self.err(&join(&path, "url"), "an http url is an OData service", "add kind = \"odata\" to this app");
                continue;
            }
            let password_env = self.string(t, "password_env", &path);
            let password_file = self.string(t, "password_file", &path).map(|p| base_dir.join(p));
            let capture = match self.string(t, "capture", &path).as_deref() {
                None | Some("auto") => Capture::Auto,
                Some("log") => Capture::Log,
                Some("trigger") => Capture::Trigger,
                Some(other) => {
                    self.err(
                        &join(&path, "capture"),
                        format!("{other:?} is not a way of capturing changes"),
                        "write capture = \"auto\" (the log where the server allows it), \"log\" or \"trigger\"",
                    );
                    Capture::Auto
                }
            };
            let Some(url) = url else { continue };
            if capture == Capture::Log && url.starts_with("sqlite://") {
                self.err(&join(&path, "capture"), "SQLite has no log dualsync can read", "remove capture (SQLite keeps triggers)");
            }
            if url.contains('@') && redact_url(&url) != url {
                self.err(
                    &join(&path, "url"),
                    "the URL contains a password",
                    "remove it from the file and set password_env = \"VAR\" (or password_file) instead",
                );
            }
            match DatabaseUrl::parse(&url, base_dir) {
                Ok(url) => {
                    out.push(AppConfig { name: name.clone(), url, password_env, password_file, secret_key: "password_env", capture })
                }
                Err(e) => self.err(&join(&path, "url"), e, ""),
            }
        }
        if out.len() < 2 && self.errors.is_empty() {
            self.err("apps", "at least two apps are needed", "define both sides, such as [apps.erp] and [apps.crm]");
        }
        out
    }

    fn odata_app_entry(&mut self, t: &Table, name: &str, path: &str, out: &mut Vec<AppConfig>) {
        let Some(url) = self.required_string(t, "url", path, "add url = \"https://host/service/root\"") else { return };
        let capture = match self.string(t, "capture", path).as_deref() {
            None | Some("auto") | Some("poll") => Capture::Auto,
            Some(other) => {
                self.err(
                    &join(path, "capture"),
                    format!("an OData service is captured by polling, not {other:?}"),
                    "remove capture, and set changed = \"COLUMN\" for live sync",
                );
                Capture::Auto
            }
        };
        if redact_url(&url) != url {
            self.err(&join(path, "url"), "the URL contains a password", "remove it and set auth with its secret in the environment");
            return;
        }
        let Some((odata, secret)) = self.odata_app(t, path, &url) else { return };
        out.push(AppConfig {
            name: name.to_string(),
            url: DatabaseUrl::OData(Box::new(odata)),
            password_env: secret.env,
            password_file: secret.file.map(PathBuf::from),
            secret_key: secret.env_key,
            capture,
        });
    }

    fn map(&mut self, t: &Table, index: usize, path: &str, apps: &[String]) -> Option<MapConfig> {
        let errors_before = self.errors.len();
        let name = self.required_string(t, "name", path, "give the map a name = \"customers\"").unwrap_or_default();
        const FIXED: [&str; 12] = [
            "name",
            "threading",
            "workers",
            "batch_size",
            "master",
            "conflict",
            "on_delete",
            "alert_errors",
            "alert_minutes",
            "max_delete_percent",
            "columns",
            "description",
        ];

        // Every other key must be a side: [maps.APP].
        let mut side_keys = Vec::new();
        for (key, v) in t {
            if FIXED.contains(&key.as_str()) {
                continue;
            }
            if apps.contains(key) {
                side_keys.push(key.clone());
            } else if matches!(v, Toml::Table(_)) {
                self.err(
                    &join(path, key),
                    format!("map {name:?} names app {key:?}, which is not defined"),
                    format!("define [apps.{key}], or use one of: {}", apps.join(", ")),
                );
            } else {
                self.err(
                    &join(path, key),
                    format!("unknown key {key:?}"),
                    format!("a map takes {} and one table per app", FIXED.join(", ")),
                );
            }
        }
        if side_keys.len() != 2 {
            if self.errors.len() == errors_before {
                self.err(
                    path,
                    format!("map {name:?} must name exactly two apps, it names {}", side_keys.len()),
                    "add one [maps.APP] table for each of the two apps, such as [maps.erp] and [maps.crm]",
                );
            }
            return None;
        }
        let sides: Vec<SideConfig> = side_keys.iter().filter_map(|app| self.side(t, app, path)).collect();

        let threading = match self.string(t, "threading", path).as_deref() {
            None | Some("multi") => Threading::Multi,
            Some("single") => Threading::Single,
            Some(other) => {
                self.err(
                    &join(path, "threading"),
                    format!("threading {other:?} is unknown"),
                    "use \"single\" (ordered) or \"multi\" (parallel)",
                );
                Threading::Multi
            }
        };
        let workers = self.positive(t, "workers", path, default_workers());
        let batch_size = t.contains_key("batch_size").then(|| self.positive(t, "batch_size", path, DEFAULT_BATCH_SIZE));
        let master = match self.string(t, "master", path) {
            None => 0,
            Some(m) => match side_keys.iter().position(|s| *s == m) {
                Some(i) => i,
                None => {
                    self.err(
                        &join(path, "master"),
                        format!("master {m:?} is not one of this map's apps"),
                        format!("use {:?} or {:?}", side_keys[0], side_keys[1]),
                    );
                    0
                }
            },
        };
        let conflict = match self.string(t, "conflict", path).as_deref() {
            None | Some("master") => ConflictPolicy::Master,
            Some("latest") => ConflictPolicy::Latest,
            Some("merge") => ConflictPolicy::Merge,
            Some("manual") => ConflictPolicy::Manual,
            Some(other) => {
                self.err(
                    &join(path, "conflict"),
                    format!("conflict {other:?} is unknown"),
                    "use \"master\", \"latest\", \"merge\" or \"manual\"",
                );
                ConflictPolicy::Master
            }
        };
        let on_delete = match self.string(t, "on_delete", path).as_deref() {
            None | Some("delete") => OnDelete::Delete,
            Some("ignore") => OnDelete::Ignore,
            Some(other) => {
                self.err(&join(path, "on_delete"), format!("on_delete {other:?} is unknown"), "use \"delete\" or \"ignore\"");
                OnDelete::Delete
            }
        };
        let alert = match (t.contains_key("alert_errors"), t.contains_key("alert_minutes")) {
            (false, false) => None,
            (true, true) => {
                Some(AlertRule { errors: self.positive(t, "alert_errors", path, 1), minutes: self.positive(t, "alert_minutes", path, 1) })
            }
            _ => {
                self.err(
                    path,
                    "alert_errors and alert_minutes go together",
                    "set both, such as alert_errors = 50 and alert_minutes = 5 (pause after 50 failed rows in 5 minutes)",
                );
                None
            }
        };
        let max_delete_percent = match t.get("max_delete_percent") {
            None => DEFAULT_MAX_DELETE_PERCENT,
            Some(Toml::Integer(n)) if (0..=100).contains(n) => *n as u8,
            Some(_) => {
                self.err(
                    &join(path, "max_delete_percent"),
                    "max_delete_percent must be a whole number from 0 to 100",
                    format!("remove it for the default ({DEFAULT_MAX_DELETE_PERCENT}), or use 100 to allow any share short of every row"),
                );
                DEFAULT_MAX_DELETE_PERCENT
            }
        };
        let columns = self.columns(t.get("columns"), path, &side_keys);
        if self.errors.len() > errors_before || sides.len() != 2 {
            return None;
        }
        let sides: [SideConfig; 2] = sides.try_into().ok()?;
        let map = MapConfig {
            name,
            index,
            threading,
            workers,
            batch_size,
            master,
            conflict,
            on_delete,
            alert,
            max_delete_percent,
            sides,
            columns,
        };
        self.check_keys_and_company(&map, path);
        Some(map)
    }

    fn side(&mut self, map: &Table, app: &str, map_path: &str) -> Option<SideConfig> {
        let path = join(map_path, app);
        let Some(Toml::Table(t)) = map.get(app) else {
            self.err(&path, format!("{app} must be a table"), format!("write [maps.{app}] with table = and key ="));
            return None;
        };
        self.unknown_keys(
            t,
            &path,
            &["table", "key", "company", "company_lookup", "id", "id_default", "filter"],
            "a map's app table takes table, key, company, company_lookup, id, id_default and filter",
        );
        let table = self.required_string(t, "table", &path, format!("add table = \"NAME\" under [maps.{app}]").as_str());
        let key = self.strings(t, "key", &path);
        if key.as_ref().is_none_or(|k| k.is_empty()) {
            self.err(
                &path,
                "key is missing",
                format!("add key = [\"Column\"] under [maps.{app}]: the columns that identify a row in both apps"),
            );
        }
        let company = self.string(t, "company", &path);
        let company_lookup = self.string(t, "company_lookup", &path);
        if company_lookup.is_some() && company.is_none() {
            self.err(
                &join(&path, "company_lookup"),
                "company_lookup is set but company is not",
                "name the company column with company = \"COLUMN\"",
            );
        }
        let id = self.string(t, "id", &path);
        let id_default = match self.string(t, "id_default", &path).as_deref() {
            None => None,
            Some("uuid") => Some(IdDefault::Uuid),
            Some(other) => {
                self.err(
                    &join(&path, "id_default"),
                    format!("id_default {other:?} is unknown"),
                    "use \"uuid\", or remove it when the database generates the id",
                );
                None
            }
        };
        if id_default.is_some() && id.is_none() {
            self.err(
                &join(&path, "id_default"),
                "id_default is set but id is not",
                "add id = \"COLUMN\" naming the table's own primary key",
            );
        }
        let filter = match self.string(t, "filter", &path) {
            None => None,
            Some(text) => match Filter::parse(&text) {
                Ok(f) => Some(f),
                Err(e) => {
                    self.err(&join(&path, "filter"), e.to_string(), "a filter is column op value (=, <>, <, <=, >, >=, IS [NOT] NULL, [NOT] IN (...)) joined by AND, OR, NOT; text values in 'single quotes'");
                    None
                }
            },
        };
        Some(SideConfig { app: app.to_string(), table: table?, key: key?, company, company_lookup, id, id_default, filter })
    }

    fn columns(&mut self, value: Option<&Toml>, map_path: &str, sides: &[String]) -> Vec<ColumnMapping> {
        let Some(Toml::Array(items)) = value else {
            self.err(map_path, "the map has no columns", "add [[maps.columns]] sections, each naming the column on both apps");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{map_path}.columns[{i}]");
            let Toml::Table(t) = item else {
                self.err(&path, "a column mapping must be a table", "write [[maps.columns]] sections");
                continue;
            };
            let mut allowed: Vec<&str> = sides.iter().map(String::as_str).collect();
            allowed.extend(["direction", "lookup", "values", "redact"]);
            self.unknown_keys(
                t,
                &path,
                &allowed,
                "a column mapping names the column on each app and may take direction, lookup, values, redact",
            );
            let names: Vec<Option<String>> = sides
                .iter()
                .map(|app| self.required_string(t, app, &path, &format!("add {app} = \"COLUMN\": the column on app {app}")))
                .collect();
            let direction = match self.string(t, "direction", &path).as_deref() {
                None | Some("both") => Direction::Both,
                Some(d) => {
                    let arrow: Vec<&str> = d.split("->").map(str::trim).collect();
                    match arrow.as_slice() {
                        [a, b] if *a == sides[0] && *b == sides[1] => Direction::From(0),
                        [a, b] if *a == sides[1] && *b == sides[0] => Direction::From(1),
                        _ => {
                            self.err(
                                &join(&path, "direction"),
                                format!("direction {d:?} is unknown"),
                                format!("use \"both\", \"{0}->{1}\" or \"{1}->{0}\"", sides[0], sides[1]),
                            );
                            Direction::Both
                        }
                    }
                }
            };
            let lookup = self.string(t, "lookup", &path);
            let values = match t.get("values") {
                None => Vec::new(),
                Some(Toml::Table(v)) => v
                    .iter()
                    .filter_map(|(from, to)| match to {
                        Toml::String(s) => Some((from.clone(), s.clone())),
                        Toml::Integer(n) => Some((from.clone(), n.to_string())),
                        _ => {
                            self.err(
                                &join(&path, "values"),
                                format!("the translation of {from:?} must be a string"),
                                "write values = { A = \"1\", B = \"2\" }",
                            );
                            None
                        }
                    })
                    .collect(),
                Some(_) => {
                    self.err(
                        &join(&path, "values"),
                        "values must be an inline table",
                        format!("write values = {{ {}Value = \"{}Value\" }}", sides[0], sides[1]),
                    );
                    Vec::new()
                }
            };
            if lookup.is_some() && !values.is_empty() {
                self.err(
                    &path,
                    "a column cannot have both lookup and values",
                    "a lookup's values are resolved through the referenced map; remove values",
                );
            }
            let redact = match t.get("redact") {
                None => false,
                Some(Toml::Boolean(b)) => *b,
                Some(_) => {
                    self.err(&join(&path, "redact"), "redact must be true or false", "write redact = true");
                    false
                }
            };
            if let [Some(a), Some(b)] = names.as_slice() {
                out.push(ColumnMapping { names: [a.clone(), b.clone()], direction, lookup, values, redact });
            }
        }
        for side in 0..2 {
            let mut seen: Vec<&str> = Vec::new();
            for (i, c) in out.iter().enumerate() {
                if seen.contains(&c.names[side].as_str()) {
                    self.err(
                        &format!("{map_path}.columns[{i}].{}", sides[side]),
                        format!("column {:?} is mapped twice", c.names[side]),
                        "map each column once",
                    );
                }
                seen.push(&c.names[side]);
            }
        }
        out
    }

    fn check_keys_and_company(&mut self, m: &MapConfig, path: &str) {
        // Each key column must be mapped, and the two keys must map onto each other.
        let mut positions: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for side in 0..2 {
            for k in &m.sides[side].key {
                match m.columns.iter().position(|c| &c.names[side] == k) {
                    Some(p) => positions[side].push(p),
                    None => self.err(
                        &format!("{path}.{}.key", m.sides[side].app),
                        format!("key column {k:?} of app {} is not in the map's columns", m.sides[side].app),
                        format!("add a [[maps.columns]] with {} = {k:?} and the matching column of the other app", m.sides[side].app),
                    ),
                }
            }
        }
        let mut sorted = positions.clone();
        sorted.iter_mut().for_each(|p| p.sort());
        if positions[0].len() == m.sides[0].key.len() && positions[1].len() == m.sides[1].key.len() && sorted[0] != sorted[1] {
            self.err(
                &format!("{path}.{}.key", m.sides[1].app),
                format!("the keys of the two apps do not map onto each other ({:?} and {:?})", m.sides[0].key, m.sides[1].key),
                "each key column of one app must be mapped to a key column of the other",
            );
        }
        for (i, c) in m.columns.iter().enumerate() {
            if c.lookup.is_some() && positions[0].contains(&i) {
                self.err(
                    &format!("{path}.columns[{i}]"),
                    "a key column cannot be a lookup (not supported yet)",
                    "map the lookup as a non-key column",
                );
            }
            // The error log keeps each failed row's key, to retry it: a key cannot be hidden.
            let is_company = (0..2).any(|s| m.sides[s].company.as_ref() == Some(&c.names[s]));
            if c.redact && c.lookup.is_some() {
                self.err(
                    &format!("{path}.columns[{i}].redact"),
                    "a lookup column cannot be redacted: it holds a reference to another map's row, and messages name it",
                    "redact the columns that hold sensitive values",
                );
            }
            if c.redact && (positions[0].contains(&i) || is_company) {
                self.err(
                    &format!("{path}.columns[{i}].redact"),
                    "a key or company column cannot be redacted: the error log and the conflict queue name rows by them",
                    "redact the columns that hold sensitive values, not the key",
                );
            }
            if c.direction != Direction::Both && positions[0].contains(&i) {
                self.err(&format!("{path}.columns[{i}].direction"), "a key column flows both ways", "remove direction from key columns");
            }
            // Both apps' rows are merge-joined in key order: a translated key would sort differently in each app.
            if !c.values.is_empty() && positions[0].contains(&i) {
                self.err(
                    &format!("{path}.columns[{i}].values"),
                    "a key column cannot translate its values: the two apps' rows are paired by key in key order, which a translation does not keep",
                    "map the key as both apps spell it, and translate a non-key copy of the column if needed",
                );
            }
        }
        // A company column that is also mapped (or keyed) is written once, with the partition's company:
        // it must then be the other app's company column too, untranslated.
        for side in 0..2 {
            let Some(company) = &m.sides[side].company else { continue };
            let Some(i) = m.columns.iter().position(|c| &c.names[side] == company) else { continue };
            let c = &m.columns[i];
            let other = m.sides[1 - side].company.as_ref();
            let problem = if other != Some(&c.names[1 - side]) {
                Some(format!(
                    "company column {company:?} of app {} is mapped to {:?}, which is not app {}'s company column",
                    m.sides[side].app,
                    c.names[1 - side],
                    m.sides[1 - side].app
                ))
            } else if m.sides.iter().any(|s| s.company_lookup.is_some()) {
                Some("a company column that holds ids (company_lookup) cannot also be mapped".to_string())
            } else if !c.values.is_empty() || c.lookup.is_some() || c.direction != Direction::Both {
                Some("a mapped company column is copied as it is: no values, lookup or direction".to_string())
            } else {
                None
            };
            if let Some(problem) = problem {
                self.err(
                    &format!("{path}.columns[{i}]"),
                    problem,
                    "map the two apps' company columns onto each other as they are, or leave the company column out of the columns (it is synced per company anyway)",
                );
                break;
            }
        }
        if m.sides[0].company.is_some() != m.sides[1].company.is_some() {
            let missing = if m.sides[0].company.is_none() { 0 } else { 1 };
            self.err(
                &format!("{path}.{}", m.sides[missing].app),
                "company is set for one app only",
                format!("set company = \"COLUMN\" under [maps.{}] too, or remove it from both for a global map", m.sides[missing].app),
            );
        }
    }

    fn cross_map_checks(&mut self, maps: &[MapConfig]) {
        for m in maps {
            for side in &m.sides {
                let Some(target) = &side.company_lookup else { continue };
                let path = format!("maps[{}].{}.company_lookup", m.index, side.app);
                match maps.iter().find(|o| &o.name == target) {
                    None => self.err(
                        &path,
                        format!("company_lookup names map {target:?}, which does not exist"),
                        "name the global map of companies",
                    ),
                    Some(r) if !r.is_global() => self.err(
                        &path,
                        format!("map {target:?} has a company column itself"),
                        "the companies map is global: no company column",
                    ),
                    Some(r) if r.side_of_app(&side.app).is_none() => {
                        self.err(&path, format!("map {target:?} does not include app {}", side.app), "")
                    }
                    Some(r) if r.sides[0].key.len() != 1 => self.err(
                        &path,
                        format!("map {target:?} has a key of several columns"),
                        "the companies map's key is the company code",
                    ),
                    Some(_) => {}
                }
            }
        }
        for (i, m) in maps.iter().enumerate() {
            if maps[..i].iter().any(|o| o.name == m.name) {
                self.err(&format!("maps[{}].name", m.index), format!("two maps are named {:?}", m.name), "give each map its own name");
            }
            for (c, col) in m.columns.iter().enumerate() {
                let Some(target) = &col.lookup else { continue };
                let path = format!("maps[{}].columns[{c}].lookup", m.index);
                let Some(r) = maps.iter().find(|o| &o.name == target) else {
                    let names: Vec<&str> = maps.iter().map(|o| o.name.as_str()).collect();
                    self.err(
                        &path,
                        format!("lookup names map {target:?}, which does not exist"),
                        format!("use one of: {}", names.join(", ")),
                    );
                    continue;
                };
                if r.sides[0].app != m.sides[0].app && r.sides[0].app != m.sides[1].app
                    || r.side_of_app(m.app(0)).is_none()
                    || r.side_of_app(m.app(1)).is_none()
                {
                    self.err(
                        &path,
                        format!("map {target:?} does not join the same two apps"),
                        "a lookup refers to a map between the same apps",
                    );
                } else if r.sides[0].key.len() != 1 {
                    self.err(
                        &path,
                        format!("map {target:?} has a key of {} columns; a lookup column refers to a one-column key", r.sides[0].key.len()),
                        "",
                    );
                } else if !r.is_global() && m.is_global() {
                    self.err(
                        &path,
                        format!("global map {:?} refers to company map {target:?}", m.name),
                        "a lookup from a map without company can only refer to another global map",
                    );
                }
            }
        }
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
