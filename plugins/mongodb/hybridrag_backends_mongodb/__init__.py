"""hybridrag-backends mongodb provider plugin."""
