"""Source plugins (entry-point group ``reportctl.sources``)."""
