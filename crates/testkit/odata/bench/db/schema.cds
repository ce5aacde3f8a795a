// The table `dualsync bench --odata` writes and reads.
namespace b;
entity Item { key k: String(40); name: String(100); qty: Integer; price: Decimal(14,2); }
