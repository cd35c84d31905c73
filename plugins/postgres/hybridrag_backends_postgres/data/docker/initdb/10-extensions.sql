-- hybridrag-backends `postgres up` (Docker route): the extensions LightRAG's PG storages need, in the
-- database and in template1 (so databases created later have them too).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS age;
\c template1
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS age;
