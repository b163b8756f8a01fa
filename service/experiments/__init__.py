"""Online A/B experiments: definitions, assignment, storage, statistics and the decision."""
