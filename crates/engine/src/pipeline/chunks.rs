//! Where to cut a big partition into chunks of about `rows` keys, so that
//! several processes can sync one company: every `rows`-th key of the side
//! that holds more rows, read in key order. A chunk is then the keys after one
//! bound and up to the next, on both sides (`SideReader::within`); every key
//! falls in exactly one chunk, whichever side holds it.

use super::read::SideReader;
use super::Context;
use crate::apps::in_app;
use crate::pipeline::company::Company;
use crate::shape::MapShape;
use crate::side::Side;
use crate::EngineError;
use dualsync_connectors::ScanRequest;
use dualsync_model::Key;

/// The keys read per batch while looking for bounds.
const BATCH: usize = 10_000;

/// The upper bounds of the chunks but the last (empty: one chunk is enough).
/// Keys that the map translates (a lookup on a key column) are compared in
/// the app's own form, which is not the order of the common form: such maps
/// are not chunked.
pub(crate) fn chunk_bounds(ctx: &Context, shape: &MapShape, company: &Option<Company>, rows: u64) -> Result<Vec<Key>, EngineError> {
    if shape.key_positions.iter().any(|&p| shape.lookups[p].is_some() || shape.translations[p].is_some()) {
        return Ok(Vec::new());
    }
    let mut largest = None;
    for side in Side::BOTH {
        let reader = SideReader::new(side, company.clone());
        if !reader.has_company(shape) {
            continue;
        }
        let app = &shape.apps[side];
        let n = ctx.apps.connect(app)?.count(&reader.selection(shape)).map_err(in_app(&ctx.apps, app))?;
        if largest.is_none_or(|(_, most)| n > most) {
            largest = Some((side, n));
        }
    }
    let Some((side, n)) = largest.filter(|(_, n)| *n > rows) else { return Ok(Vec::new()) };
    let reader = SideReader::new(side, company.clone());
    let app = &shape.apps[side];
    let request = ScanRequest {
        selection: reader.selection(shape),
        columns: shape.key_columns[side].clone(),
        order_by: shape.key_columns[side].clone(),
        batch_size: BATCH,
    };
    let mut bounds = Vec::with_capacity((n / rows) as usize);
    let mut seen = 0u64;
    ctx.apps
        .connect(app)?
        .scan(&request, &mut |keys| {
            for key in keys {
                seen += 1;
                // The last chunk takes the rest: no bound at the very end.
                if seen % rows == 0 && seen < n {
                    bounds.push(key);
                }
            }
            true
        })
        .map_err(in_app(&ctx.apps, app))?;
    Ok(bounds)
}
