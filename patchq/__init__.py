"""patchq: annotated patch queues against pinned upstreams, applied, rebased, audited and bundled."""

__version__ = "0.1.0"
