-- The sample ERP ("finance and operations"): company-keyed tables, codes as keys.
CREATE TABLE Companies (DataArea TEXT PRIMARY KEY, Name TEXT NOT NULL);
CREATE TABLE Currencies (CurrencyCode TEXT PRIMARY KEY, Name TEXT NOT NULL, Symbol TEXT);
CREATE TABLE CustGroup (
    DataAreaId TEXT NOT NULL, CustomerGroupId TEXT NOT NULL, Description TEXT,
    PRIMARY KEY (DataAreaId, CustomerGroupId));
CREATE TABLE CustomersV3 (
    DataAreaId TEXT NOT NULL, CustomerAccount TEXT NOT NULL, Name TEXT, CreditLimit NUMERIC,
    CustomerGroupId TEXT, PaymentTerms TEXT, Currency TEXT, Email TEXT, Notes TEXT,
    PRIMARY KEY (DataAreaId, CustomerAccount));
CREATE TABLE VendorsV2 (
    DataAreaId TEXT NOT NULL, VendorAccount TEXT NOT NULL, Name TEXT, Currency TEXT,
    PRIMARY KEY (DataAreaId, VendorAccount));
CREATE TABLE Warehouses (
    DataAreaId TEXT NOT NULL, WarehouseId TEXT NOT NULL, Name TEXT NOT NULL,
    PRIMARY KEY (DataAreaId, WarehouseId));
CREATE TABLE WarehouseLocations (
    DataAreaId TEXT NOT NULL, LocationId TEXT NOT NULL, WarehouseId TEXT NOT NULL, Description TEXT,
    PRIMARY KEY (DataAreaId, LocationId));
CREATE TABLE ContactPersons (
    DataAreaId TEXT NOT NULL, ContactPersonId TEXT NOT NULL, FirstName TEXT, LastName TEXT,
    Email TEXT, CustomerAccount TEXT,
    PRIMARY KEY (DataAreaId, ContactPersonId));
