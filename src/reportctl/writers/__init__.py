"""Writer plugins (entry-point group ``reportctl.writers``)."""
