"""Review: what a change does to compiled output, by site, object and field (``gen diff``)."""
