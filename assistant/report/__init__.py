"""Report drafting: draft types and templates, dictation placement, store and export."""
