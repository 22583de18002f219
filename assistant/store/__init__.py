"""What radassist keeps: the one database module, the audit trail and saved conversations."""
