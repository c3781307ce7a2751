"""Party roles and applications built on the public API: diagnostics, demos."""
