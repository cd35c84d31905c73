"""hybridrag-backends json provider plugin."""
