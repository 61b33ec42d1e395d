"""baove's common package: event contracts, topology, settings, database, outbox/inbox, auth, metrics."""
