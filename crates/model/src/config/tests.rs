use super::*;

const DESIGN_EXAMPLE: &str = r#"
[state]
url = "sqlite://.dualsync/state.db"

[apps.erp]
url = "sqlite://erp.db"
password_env = "ERP_DB_PASSWORD"

[apps.crm]
url = "sqlite://crm.db"

[[maps]]
name = "customer-groups"
[maps.erp]
table = "CustGroup"
key = ["CustomerGroupId"]
company = "DataAreaId"
[maps.crm]
table = "msdyn_customergroup"
key = "msdyn_groupid"
company = "company_code"
id = "msdyn_customergroupid"
id_default = "uuid"
[[maps.columns]]
erp = "CustomerGroupId"
crm = "msdyn_groupid"

[[maps]]
name = "customers"
threading = "single"
master = "erp"
conflict = "master"
[maps.erp]
table = "CustomersV3"
key = ["CustomerAccount"]
company = "DataAreaId"
[maps.crm]
table = "account"
key = ["accountnumber"]
company = "company_code"
id = "accountid"
id_default = "uuid"
filter = "statecode = 0"

[[maps.columns]]
erp = "CustomerAccount"
crm = "accountnumber"
[[maps.columns]]
erp = "Name"
crm = "name"
[[maps.columns]]
erp = "CreditLimit"
crm = "creditlimit"
direction = "erp->crm"
[[maps.columns]]
erp = "CustomerGroupId"
crm = "customergroupid"
lookup = "customer-groups"
[[maps.columns]]
erp = "PaymentTerms"
crm = "paymenttermscode"
values = { Net30 = "1", Net60 = "2" }
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_config(text, Path::new("/cfg/dualsync.toml"))
}

fn only_error(text: &str) -> ConfigError {
    let errs = parse(text).expect_err("config must be refused").0;
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn the_design_example_loads() {
    let c = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(c.apps[0].url, DatabaseUrl::Sqlite("/cfg/erp.db".into()), "relative paths resolve against the config folder");
    let m = c.map("customers").unwrap();
    assert_eq!(m.threading, Threading::Single);
    assert_eq!(m.columns[2].direction, Direction::From(0));
    assert_eq!(m.columns[4].values, vec![("Net30".into(), "1".into()), ("Net60".into(), "2".into())]);
    assert!(m.sides[1].filter.is_some());
    assert_eq!(m.lookups().collect::<Vec<_>>(), ["customer-groups"]);
}

#[test]
fn unknown_key_names_its_line_and_path() {
    let text = DESIGN_EXAMPLE.replace("threading = \"single\"", "threding = \"single\"");
    let e = only_error(&text);
    assert_eq!(e.path, "maps[1].threding");
    assert_eq!(e.line, Some(text.lines().position(|l| l.starts_with("threding")).unwrap() + 1));
    assert!(e.hint.contains("threading"), "{e}");
}

#[test]
fn a_map_naming_an_unknown_app_is_refused() {
    let text = DESIGN_EXAMPLE.replace("[maps.crm]\ntable = \"account\"", "[maps.crn]\ntable = \"account\"");
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("names app \"crn\", which is not defined"), "{e}");
}

#[test]
fn a_key_not_covered_by_the_columns_is_refused() {
    let text = DESIGN_EXAMPLE.replace("erp = \"CustomerAccount\"\ncrm = \"accountnumber\"", "erp = \"Other\"\ncrm = \"other\"");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("key column \"CustomerAccount\" of app erp is not in the map's columns"), "{e}");
}

#[test]
fn a_lookup_naming_an_unknown_map_is_refused() {
    let e = only_error(&DESIGN_EXAMPLE.replace("lookup = \"customer-groups\"", "lookup = \"groups\""));
    assert_eq!(e.path, "maps[1].columns[3].lookup");
    assert!(e.hint.contains("customer-groups"));
}

#[test]
fn a_bad_filter_is_refused_with_its_position() {
    let e = only_error(&DESIGN_EXAMPLE.replace("statecode = 0", "statecode = 0; DROP TABLE account"));
    assert_eq!(e.path, "maps[1].crm.filter");
    assert!(e.message.contains("character 13"), "{e}");
}

#[test]
fn a_password_in_the_url_is_refused_and_never_echoed() {
    let text = DESIGN_EXAMPLE.replace("url = \"sqlite://crm.db\"", "url = \"postgres://sync:hunter2@db/crm\"");
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("contains a password") && !e.contains("hunter2"), "{e}");
}

#[test]
fn several_mistakes_are_reported_together() {
    let text =
        DESIGN_EXAMPLE.replace("threading = \"single\"", "threading = \"one\"").replace("direction = \"erp->crm\"", "direction = \"up\"");
    assert_eq!(parse(&text).unwrap_err().0.len(), 2);
}

#[test]
fn broken_toml_points_at_the_line() {
    let e = only_error("[apps.erp]\nurl = sqlite://x\n");
    assert_eq!(e.line, Some(2));
}

#[test]
fn redaction() {
    assert_eq!(redact_url("postgres://u:p@h:5432/d"), "postgres://u:***@h:5432/d");
    assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
}

#[test]
fn values_on_a_key_column_are_refused_with_the_fix() {
    let text = DESIGN_EXAMPLE.replace(
        "erp = \"CustomerAccount\"\ncrm = \"accountnumber\"",
        "erp = \"CustomerAccount\"\ncrm = \"accountnumber\"\nvalues = { A = \"1\" }",
    );
    let e = only_error(&text);
    assert_eq!(e.path, "maps[1].columns[0].values");
    assert!(e.message.contains("key column cannot translate") && e.hint.contains("non-key copy"), "{e}");
}

#[test]
fn a_company_column_may_also_be_mapped_onto_the_other_company_column() {
    let mapped = "[[maps.columns]]\nerp = \"DataAreaId\"\ncrm = \"company_code\"\n";
    let text = DESIGN_EXAMPLE
        .replace("[[maps.columns]]\nerp = \"CustomerAccount\"", &format!("{mapped}[[maps.columns]]\nerp = \"CustomerAccount\""));
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.maps[1].columns.iter().any(|c| c.names[0] == "DataAreaId"));
    // Mapped onto another column of the CRM: refused, with the fix.
    let wrong = text.replace(
        "crm = \"company_code\"\n[[maps.columns]]\nerp = \"CustomerAccount\"",
        "crm = \"statecode\"\n[[maps.columns]]\nerp = \"CustomerAccount\"",
    );
    let e = only_error(&wrong);
    assert!(e.message.contains("not app crm's company column") && e.hint.contains("leave the company column out"), "{e}");
}

#[test]
fn the_state_lease_is_a_setting_with_bounds() {
    assert_eq!(parse(DESIGN_EXAMPLE).unwrap().state.lease_seconds, DEFAULT_LEASE_SECONDS);
    let set = DESIGN_EXAMPLE.replace("url = \"sqlite://.dualsync/state.db\"", "url = \"sqlite://.dualsync/state.db\"\nlease_seconds = 30");
    assert_eq!(parse(&set).unwrap().state.lease_seconds, 30);
    for bad in ["0", "1", "86400", "\"15\"", "2.5"] {
        let text = DESIGN_EXAMPLE
            .replace("url = \"sqlite://.dualsync/state.db\"", &format!("url = \"sqlite://.dualsync/state.db\"\nlease_seconds = {bad}"));
        let e = only_error(&text);
        assert_eq!(e.path, "state.lease_seconds", "{bad}: {e}");
        assert!(e.message.contains("from 2 to 3600"), "{bad}: {e}");
    }
}

#[test]
fn the_chunk_size_of_a_shared_sync_is_a_setting_with_a_floor() {
    assert_eq!(parse(DESIGN_EXAMPLE).unwrap().state.chunk_rows, DEFAULT_CHUNK_ROWS);
    let set = DESIGN_EXAMPLE.replace("url = \"sqlite://.dualsync/state.db\"", "url = \"sqlite://.dualsync/state.db\"\nchunk_rows = 250000");
    assert_eq!(parse(&set).unwrap().state.chunk_rows, 250_000);
    for bad in ["0", "99", "-5", "\"1M\""] {
        let text = DESIGN_EXAMPLE
            .replace("url = \"sqlite://.dualsync/state.db\"", &format!("url = \"sqlite://.dualsync/state.db\"\nchunk_rows = {bad}"));
        let e = only_error(&text);
        assert_eq!(e.path, "state.chunk_rows", "{bad}: {e}");
        assert!(e.message.contains("100 or more"), "{bad}: {e}");
    }
}
