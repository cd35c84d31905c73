"""hybridrag-backends provider for LightRAG's Redis KV and doc status storages (vectors and graph in files)."""
