"""``python mongo_fake_launcher.py -m MODULE ARGS...``: run MODULE with the in-process MongoDB fake
installed, for the conformance suite's subprocesses (the CLI, the LightRAG reader).

The fake keeps an operation log (``HYBRIDRAG_FAKE_MONGO_OPLOG``) and replays it on start, so
successive processes see one database and a SIGKILLed one loses nothing it applied (see
mongo_fake.py). LightRAG's own Mongo storages make their client themselves (``AsyncMongoClient`` in
``lightrag.kg.mongo_impl``): the reader gets the fake there too. With HYBRIDRAG_TEST_MONGO_URI set
(a real server) nothing is replaced.
"""

import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if sys.argv[1:2] != ["-m"] or len(sys.argv) < 3:
    sys.exit("usage: mongo_fake_launcher.py -m MODULE [ARGS...]")
module = sys.argv[2]
if not os.environ.get("HYBRIDRAG_TEST_MONGO_URI"):
    from mongo_fake import FakeServer

    from hybridrag_backends_mongodb.client import use_client_factory

    reader = module == "hybridrag_backends.testing.lightrag_dump"
    # LightRAG's MongoVectorDBStorage refuses to start without Atlas search indexes: the reader
    # gets the fake's Atlas mode (indexes READY at once; $vectorSearch itself is not emulated)
    server = FakeServer(os.environ["HYBRIDRAG_FAKE_MONGO_OPLOG"], atlas_search=reader)
    use_client_factory(server.factory)
    if reader:
        import lightrag.kg.mongo_impl as mongo_impl

        mongo_impl.AsyncMongoClient = server.factory
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
