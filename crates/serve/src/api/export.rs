//! `/api/v1/errors/export`: the whole error log (or what a filter selects) as
//! CSV or JSON, streamed page by page through a small bounded channel, so
//! that a million errors cost the memory of a few pages.

use super::errors::ErrorFilter;
use super::{ApiError, Query};
use crate::service::Service;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dualsync_state::ErrorRecord;
use serde::Deserialize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Errors read from the store at a time, and pages that may wait unsent.
const PAGE: usize = 1000;
const PAGES_IN_FLIGHT: usize = 4;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Format {
    /// csv (RFC 4180, a header line first) or json (one array).
    format: Option<String>,
}

/// Streams every error the filter selects, oldest first (`limit` and `after` are not used).
#[utoipa::path(get, path = "/api/v1/errors/export", params(Format, ErrorFilter), responses(
    (status = 200, description = "text/csv or application/json, streamed"), (status = 400, body = super::ErrorBody)))]
pub async fn errors(
    State(service): State<Arc<Service>>,
    Query(format): Query<Format>,
    Query(filter): Query<ErrorFilter>,
) -> Result<Response, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(other) => return Err(ApiError::bad_request(format!("format={other:?}: pick csv or json"))),
    };
    let mut query = filter.query()?;
    query.limit = Some(PAGE);
    let (send, receive) = mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut first = true;
        let head = if csv { format!("{}\r\n", ErrorRecord::CSV_COLUMNS.join(",")) } else { "[".to_string() };
        if send.blocking_send(Ok(Bytes::from(head))).is_err() {
            return;
        }
        loop {
            let page = match service.store.errors(&query) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "error export stopped");
                    let _ = send.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            let mut chunk = String::new();
            for e in &page {
                if csv {
                    csv_line(&mut chunk, e);
                } else {
                    if !first {
                        chunk.push(',');
                    }
                    chunk.push_str(&e.to_json().to_string());
                }
                first = false;
            }
            // The reader went away: stop reading the store.
            if !chunk.is_empty() && send.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => query.after_id = Some(last.id),
                _ => break,
            }
        }
        if !csv {
            let _ = send.blocking_send(Ok(Bytes::from_static(b"]")));
        }
    });
    let (kind, name) = if csv { ("text/csv; charset=utf-8", "errors.csv") } else { ("application/json", "errors.json") };
    Ok((
        [(header::CONTENT_TYPE, kind.to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        Body::from_stream(Pages(receive)),
    )
        .into_response())
}

/// One error as a CSV line: fields with a quote, comma or line break are quoted, quotes doubled.
fn csv_line(out: &mut String, e: &ErrorRecord) {
    for (i, f) in e.csv_fields().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains(['"', ',', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

/// The channel's pages as a body stream.
struct Pages(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for Pages {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
