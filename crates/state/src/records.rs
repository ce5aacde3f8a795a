//! What the state store holds, as plain data for the engine and the CLI.

use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Ok,
    /// The run finished but some rows failed; they are in the error log.
    RowsFailed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::RowsFailed => "rows_failed",
            RunStatus::Failed => "failed",
        }
    }
}

/// Row counts of one partition, per side (index 0 and 1 are the map's two apps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub read: [u64; 2],
    pub inserted: [u64; 2],
    pub updated: [u64; 2],
    pub failed: [u64; 2],
    /// Rows deleted (live and incremental sync).
    pub deleted: [u64; 2],
    pub unchanged: u64,
    /// Keys changed on both apps since their merge base.
    pub conflicts: u64,
    /// Rows without a company value, which take no part until they get one.
    pub no_company: [u64; 2],
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        for s in 0..2 {
            self.read[s] += o.read[s];
            self.inserted[s] += o.inserted[s];
            self.updated[s] += o.updated[s];
            self.failed[s] += o.failed[s];
            self.deleted[s] += o.deleted[s];
            self.no_company[s] += o.no_company[s];
        }
        self.unchanged += o.unchanged;
        self.conflicts += o.conflicts;
    }

    pub fn written(&self) -> u64 {
        self.inserted.iter().chain(&self.updated).chain(&self.deleted).sum()
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }
}

/// A failed row, as the engine reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewError {
    pub map: String,
    pub company: String,
    pub source_app: String,
    pub target_app: String,
    pub key: String,
    pub column: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, Default)]
pub struct ErrorQuery {
    pub map: Option<String>,
    pub run: Option<i64>,
    pub ids: Vec<i64>,
    pub include_resolved: bool,
    pub company: Option<String>,
    /// Rows read from or written into this app.
    pub app: Option<String>,
    pub column: Option<String>,
    /// Only errors numbered after this one (keyset paging).
    pub after_id: Option<i64>,
    /// At most this many, the oldest first.
    pub limit: Option<usize>,
}

/// A row of the error log: the failed row as it was reported, and its history.
#[derive(Clone, Debug)]
pub struct ErrorRecord {
    pub id: i64,
    pub run_id: i64,
    pub error: NewError,
    pub attempts: i64,
    pub status: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Why an operator skipped it.
    pub note: Option<String>,
}

impl std::ops::Deref for ErrorRecord {
    type Target = NewError;
    fn deref(&self) -> &NewError {
        &self.error
    }
}

impl ErrorRecord {
    /// The columns of the error log as CSV (`dualsync errors --format csv`, the service's export).
    pub const CSV_COLUMNS: [&'static str; 15] = [
        "id",
        "run",
        "map",
        "company",
        "source_app",
        "target_app",
        "key",
        "column",
        "value",
        "message",
        "attempts",
        "status",
        "first_seen",
        "last_seen",
        "note",
    ];

    /// This error's fields in the order of `CSV_COLUMNS` (absent ones empty).
    pub fn csv_fields(&self) -> [String; 15] {
        [
            self.id.to_string(),
            self.run_id.to_string(),
            self.map.clone(),
            self.company.clone(),
            self.source_app.clone(),
            self.target_app.clone(),
            self.key.clone(),
            self.column.clone().unwrap_or_default(),
            self.value.clone().unwrap_or_default(),
            self.message.clone(),
            self.attempts.to_string(),
            self.status.clone(),
            self.first_seen.clone(),
            self.last_seen.clone(),
            self.note.clone().unwrap_or_default(),
        ]
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id, "run": self.run_id, "map": self.map, "company": self.company,
            "source_app": self.source_app, "target_app": self.target_app,
            "key": serde_json::from_str::<serde_json::Value>(&self.key).unwrap_or_else(|_| self.key.clone().into()),
            "column": self.column, "value": self.value, "message": self.message,
            "attempts": self.attempts, "status": self.status,
            "first_seen": self.first_seen, "last_seen": self.last_seen, "note": self.note,
        })
    }
}

#[derive(Clone, Debug)]
pub struct PartitionRecord {
    pub id: i64,
    pub run_id: i64,
    pub map: String,
    pub company: String,
    pub apps: [String; 2],
    pub started_at: String,
    pub ended_at: Option<String>,
    pub status: String,
    pub message: Option<String>,
    pub counts: Counts,
}
