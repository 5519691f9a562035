"""Auto-unseal: sources outside the database that wrap the vault's root key."""
