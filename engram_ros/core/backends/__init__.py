"""Memory backends beyond the embedded default (:class:`engram_ros.core.backend.EmbeddedBackend`):
:mod:`.milvus` keeps a memory in a Milvus collection (milvus-lite file or server) for a fleet;
:mod:`.milvus_filter` turns stage 1 into Milvus expressions and plans filtered searches.
Importing this package imports no client library; making a backend does."""
