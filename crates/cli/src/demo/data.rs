//! The demo's data: both apps already hold rows that overlap, conflict, lack
//! a company, carry hard text, and a few that the CRM must refuse.

use rusqlite::{params, Connection};

pub const COMPANIES: [&str; 3] = ["USMF", "DEMF", "GBSI"];

/// Text that breaks naive tools: quotes and delimiters (the seed fails on a
/// double quote), line breaks, tabs, emoji, right-to-left scripts, SQL.
pub const HARD_TEXT: [&str; 8] = [
    "He said \"hello\", then left",
    "Line one\nLine two\r\nLine three",
    "Tab\tseparated\tvalues",
    "Emoji 🚀🎉 and café crème",
    "עברית and العربية, mixed",
    "Robert'); DROP TABLE account; --",
    "  leading and trailing spaces  ",
    "",
];

/// A GUID-shaped id, the same every run, for rows the CRM already holds.
fn id(table: u32, n: u64) -> String {
    format!("{table:08x}-0000-4000-8000-{n:012x}")
}

/// A small deterministic generator, so every demo has the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FIRST: [&str; 8] = ["Ana", "Björn", "Chen", "Dalia", "Émile", "Farah", "Gústav", "Hiro"];
const LAST: [&str; 8] = ["Okafor", "Müller", "Nakamura", "O'Brien", "Silva", "Kowalski", "Haddad", "Smith-Jones"];
const TERMS: [&str; 3] = ["Net30", "Net60", "COD"];
const GROUPS: [&str; 3] = ["10", "20", "30"];

fn company_of(i: u64) -> &'static str {
    COMPANIES[(i % 3) as usize]
}

fn customer_name(i: u64) -> String {
    if i % 50 == 1 {
        format!("{} #{i}", HARD_TEXT[((i / 50) % HARD_TEXT.len() as u64) as usize])
    } else {
        format!("Customer {i} {}", LAST[(i % 8) as usize])
    }
}

pub fn fill_erp(db: &mut Connection, rows: u64) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    let mut rng = Rng(0x5eed_0001);
    for (code, name) in [("USMF", "Contoso USA"), ("DEMF", "Contoso Deutschland"), ("GBSI", "Contoso UK")] {
        tx.execute("INSERT INTO Companies VALUES (?1, ?2)", params![code, name])?;
    }
    for (code, name, sym) in [("USD", "US Dollar", "$"), ("EUR", "Euro", "€"), ("GBP", "Pound sterling", "£"), ("JPY", "Yen", "¥")] {
        tx.execute("INSERT INTO Currencies VALUES (?1, ?2, ?3)", params![code, name, sym])?;
    }
    for c in COMPANIES {
        for (g, d) in [("10", "Wholesale"), ("20", "Retail"), ("30", "Intercompany")] {
            tx.execute("INSERT INTO CustGroup VALUES (?1, ?2, ?3)", params![c, g, d])?;
        }
        for w in 1..=3 {
            tx.execute("INSERT INTO Warehouses VALUES (?1, ?2, ?3)", params![c, format!("WH-{w}"), format!("Warehouse {w} ({c})")])?;
            for l in 1..=5 {
                tx.execute(
                    "INSERT INTO WarehouseLocations VALUES (?1, ?2, ?3, ?4)",
                    params![c, format!("WH-{w}-L{l:02}"), format!("WH-{w}"), format!("Aisle {l}")],
                )?;
            }
        }
    }
    // Customers 0..rows. Some carry hard text, some must be refused by the CRM.
    let mut stmt = tx.prepare("INSERT INTO CustomersV3 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
    for i in 0..rows {
        let name: Option<String> = match i {
            _ if i % 500 == 7 => Some("A name longer than the CRM's 160 characters ".repeat(5)), // refused: CHECK
            _ if i % 500 == 9 => None,                                                           // refused: NOT NULL
            _ => Some(customer_name(i)),
        };
        let terms = if i % 500 == 11 { "Net90" } else { TERMS[(i % 3) as usize] }; // Net90 has no translation
        let group = if i % 500 == 13 { "99" } else { GROUPS[(i % 3) as usize] }; // group 99 exists nowhere
        let notes: Option<String> = match i % 200 {
            3 => Some(format!("{}…end", "Long note with \"quotes\", commas and\nnewlines. ".repeat(250))),
            4 => Some(String::new()),
            5 => None,
            _ => (i % 4 == 0).then(|| format!("Account note {i}")),
        };
        let credit = (rng.next() % 100_000) as f64 / 4.0;
        stmt.execute(params![
            company_of(i),
            format!("C{i:06}"),
            name,
            credit,
            group,
            terms,
            rng.pick(&["USD", "EUR", "GBP"]),
            format!("c{i}@erp.example"),
            notes
        ])?;
    }
    drop(stmt);
    let mut stmt = tx.prepare("INSERT INTO VendorsV2 VALUES (?1, ?2, ?3, ?4)")?;
    for i in 0..rows / 4 {
        let name = if i % 100 == 17 { None } else { Some(format!("Vendor {i} {}", rng.pick(&LAST))) };
        stmt.execute(params![company_of(i), format!("V{i:05}"), name, rng.pick(&["USD", "EUR"])])?;
    }
    drop(stmt);
    let mut stmt = tx.prepare("INSERT INTO ContactPersons VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for i in 0..rows / 2 {
        // Contact i works for customer 2i, in the same company.
        let customer = 2 * i + (3 - (2 * i) % 3 + i % 3) % 3;
        let last = if i % 250 == 21 { None } else { Some(rng.pick(&LAST).to_string()) };
        stmt.execute(params![
            company_of(customer),
            format!("CP{i:05}"),
            rng.pick(&FIRST),
            last,
            format!("p{i}@erp.example"),
            format!("C{customer:06}")
        ])?;
    }
    drop(stmt);
    tx.commit()
}

pub fn fill_crm(db: &mut Connection, rows: u64) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    let mut rng = Rng(0x5eed_0002);
    for (n, (code, name)) in [("USMF", "Contoso USA"), ("DEMF", "Contoso Germany"), ("JPMF", "Contoso Japan")].iter().enumerate() {
        tx.execute("INSERT INTO cdm_company VALUES (?1, ?2, ?3)", params![id(1, n as u64), code, name])?;
    }
    let currencies = [("USD", "US Dollar", "$"), ("EUR", "euro", "€"), ("CHF", "Swiss franc", "CHF")];
    for (n, (code, name, sym)) in currencies.iter().enumerate() {
        tx.execute("INSERT INTO transactioncurrency VALUES (?1, ?2, ?3, ?4)", params![id(2, n as u64), code, name, sym])?;
    }
    let group_id = |c: usize, g: u64| id(3, c as u64 * 100 + g);
    for (c, company) in COMPANIES.iter().enumerate().take(2) {
        for (g, d) in [(10, "Wholesale"), (20, "Retail customers"), (40, "Online")] {
            tx.execute("INSERT INTO msdyn_customergroup VALUES (?1, ?2, ?3, ?4)", params![group_id(c, g), company, g.to_string(), d])?;
        }
        for w in [1, 4] {
            let wid = id(6, c as u64 * 10 + w);
            tx.execute(
                "INSERT INTO msdyn_warehouse VALUES (?1, ?2, ?3, ?4)",
                params![wid, company, format!("WH-{w}"), format!("Warehouse {w} ({company})")],
            )?;
            for l in 1..=3 {
                tx.execute(
                    "INSERT INTO msdyn_inventorylocation VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id(7, c as u64 * 1000 + w * 10 + l), company, format!("WH-{w}-L{l:02}"), wid, format!("Aisle {l}")],
                )?;
            }
        }
    }
    // Accounts 0.4·rows .. 1.2·rows: the first half overlaps the ERP's customers.
    let mut stmt = tx.prepare("INSERT INTO account VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?;
    for i in rows * 2 / 5..rows * 6 / 5 {
        let c = (i % 3) as usize;
        let overlap = i < rows;
        let company: Option<&str> = if !overlap && i % 97 == 0 { None } else { Some(COMPANIES[c]) }; // no company yet
        let name = if overlap && i % 10 == 0 { format!("{} (edited in CRM)", customer_name(i)) } else { customer_name(i) };
        let name = if !overlap && i % 50 == 2 { format!("{} from the CRM", HARD_TEXT[((i / 50) % 8) as usize]) } else { name };
        let credit = if overlap && i % 7 == 0 { Some(1.0) } else { None };
        let group = if c < 2 { Some(group_id(c, [10, 20, 40][(i % 3) as usize])) } else { None };
        let state = if !overlap && i % 31 == 0 { 1 } else { 0 }; // inactive: outside the filter
        let description: Option<String> = if i % 200 == 5 { Some(String::new()) } else { None };
        stmt.execute(params![
            id(4, i),
            company,
            format!("C{i:06}"),
            name,
            credit,
            group,
            1 + (i % 3) as i64,
            id(2, rng.next() % 2),
            format!("c{i}@crm.example"),
            description,
            state
        ])?;
    }
    drop(stmt);
    let mut stmt = tx.prepare("INSERT INTO msdyn_vendor VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for i in rows / 8..rows * 3 / 8 {
        stmt.execute(params![id(5, i), company_of(i), format!("V{i:05}"), format!("Vendor {i} (CRM)"), id(2, 0)])?;
    }
    drop(stmt);
    let mut stmt = tx.prepare("INSERT INTO contact VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    for i in rows / 4..rows * 3 / 4 {
        let customer = 2 * i + (3 - (2 * i) % 3 + i % 3) % 3;
        // Only customers the CRM holds can be referenced by its id.
        let parent = (customer >= rows * 2 / 5 && customer < rows * 6 / 5).then(|| id(4, customer));
        let email = if i % 5 == 0 { format!("new.p{i}@crm.example") } else { format!("p{i}@erp.example") };
        stmt.execute(params![id(8, i), company_of(customer), format!("CP{i:05}"), rng.pick(&FIRST), rng.pick(&LAST), email, parent])?;
    }
    drop(stmt);
    tx.commit()
}
