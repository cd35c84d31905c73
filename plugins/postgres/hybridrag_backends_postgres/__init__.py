"""hybridrag-backends postgres provider plugin."""
