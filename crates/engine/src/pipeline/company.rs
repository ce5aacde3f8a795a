//! The company of a partition: its code (what reports, the error log and
//! `--company` use) and what each app stores in its company column, which is
//! the code itself or, with `company_lookup`, the id of the company's row.

use crate::apps::in_app;
use crate::shape::MapShape;
use crate::side::Side;
use crate::{Apps, EngineError};
use dualsync_connectors::{FetchRequest, Selection};
use dualsync_model::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct Company {
    pub code: Value,
    /// Per side, the value its company column holds for this company; None
    /// where the app has no row for the company in its companies table.
    pub stored: [Option<Value>; 2],
}

impl Company {
    pub fn shown(company: &Option<Company>) -> String {
        company.as_ref().map(|c| c.code.display().into_owned()).unwrap_or_default()
    }

    /// Looks up what each side stores for the company `code`.
    pub fn resolve(apps: &Apps, shape: &MapShape, code: Value) -> Result<Company, EngineError> {
        let mut stored = [Some(code.clone()), Some(code.clone())];
        for side in Side::BOTH {
            let Some(lookup) = &shape.company_lookup[side] else { continue };
            let app = &shape.apps[side];
            let mut conn = apps.connect(app)?;
            let rows = conn
                .fetch(&FetchRequest {
                    selection: Selection { table: lookup.table.clone(), ..Default::default() },
                    columns: vec![lookup.id_column.clone()],
                    match_columns: vec![lookup.key_column.clone()],
                    keys: vec![vec![code.clone()]],
                })
                .map_err(in_app(apps, app))?;
            stored[side] = rows.into_iter().next().and_then(|mut r| r.pop());
        }
        Ok(Company { code, stored })
    }

    /// Why rows of this company cannot be written into `side`, if they cannot.
    pub fn missing_on(&self, shape: &MapShape, side: Side) -> Option<String> {
        let lookup = shape.company_lookup[side].as_ref()?;
        self.stored[side].is_none().then(|| {
            format!(
                "company {} does not exist in {}.{}; sync map {} first (or create the company there)",
                self.code.display(),
                shape.apps[side],
                lookup.table,
                lookup.map
            )
        })
    }
}

/// Company codes for the values a side's company column holds (ids, with a company lookup).
pub fn codes_of(apps: &Apps, shape: &MapShape, side: Side, stored: Vec<Value>) -> Result<(Vec<Value>, usize), EngineError> {
    let Some(lookup) = &shape.company_lookup[side] else { return Ok((stored, 0)) };
    let app = &shape.apps[side];
    let mut conn = apps.connect(app)?;
    let rows = conn
        .fetch(&FetchRequest {
            selection: Selection { table: lookup.table.clone(), ..Default::default() },
            columns: vec![lookup.key_column.clone()],
            match_columns: vec![lookup.id_column.clone()],
            keys: stored.iter().map(|v| vec![v.clone()]).collect(),
        })
        .map_err(in_app(apps, app))?;
    let unknown = stored.len().saturating_sub(rows.len());
    Ok((rows.into_iter().filter_map(|mut r| r.pop()).collect(), unknown))
}
