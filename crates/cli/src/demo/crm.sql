-- The sample CRM (Dataverse-like): GUID primary keys, lookups hold the referenced row's id,
-- and column limits the ERP does not have (the rows that break them are refused).
CREATE TABLE cdm_company (
    cdm_companyid TEXT PRIMARY KEY, cdm_companycode TEXT NOT NULL UNIQUE, cdm_name TEXT NOT NULL);
CREATE TABLE transactioncurrency (
    transactioncurrencyid TEXT PRIMARY KEY, isocurrencycode TEXT NOT NULL UNIQUE,
    currencyname TEXT NOT NULL CHECK (length(currencyname) <= 100), currencysymbol TEXT);
CREATE TABLE msdyn_customergroup (
    msdyn_customergroupid TEXT PRIMARY KEY, company_code TEXT NOT NULL, msdyn_groupid TEXT NOT NULL,
    msdyn_description TEXT, UNIQUE (company_code, msdyn_groupid));
CREATE TABLE account (
    accountid TEXT PRIMARY KEY, company_code TEXT, accountnumber TEXT NOT NULL,
    name TEXT NOT NULL CHECK (length(name) <= 160), creditlimit REAL,
    msdyn_customergroupid TEXT, paymenttermscode INTEGER, transactioncurrencyid TEXT,
    emailaddress1 TEXT, description TEXT, statecode INTEGER NOT NULL DEFAULT 0,
    UNIQUE (company_code, accountnumber));
CREATE TABLE msdyn_vendor (
    msdyn_vendorid TEXT PRIMARY KEY, company_code TEXT NOT NULL, msdyn_vendoraccountnumber TEXT NOT NULL,
    msdyn_name TEXT NOT NULL CHECK (length(msdyn_name) <= 100), transactioncurrencyid TEXT,
    UNIQUE (company_code, msdyn_vendoraccountnumber));
CREATE TABLE msdyn_warehouse (
    msdyn_warehouseid TEXT PRIMARY KEY, company_code TEXT NOT NULL, msdyn_warehouseidentifier TEXT NOT NULL,
    msdyn_name TEXT NOT NULL, UNIQUE (company_code, msdyn_warehouseidentifier));
CREATE TABLE msdyn_inventorylocation (
    msdyn_inventorylocationid TEXT PRIMARY KEY, company_code TEXT NOT NULL, msdyn_locationid TEXT NOT NULL,
    msdyn_warehouse TEXT NOT NULL, msdyn_description TEXT, UNIQUE (company_code, msdyn_locationid));
CREATE TABLE contact (
    contactid TEXT PRIMARY KEY, company_code TEXT NOT NULL, msdyn_contactpersonid TEXT NOT NULL,
    firstname TEXT, lastname TEXT NOT NULL, emailaddress1 TEXT, parentcustomerid TEXT,
    UNIQUE (company_code, msdyn_contactpersonid));
