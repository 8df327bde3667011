"""The node's operator view: /metrics, /healthz, /status and the status page, served on loopback.

The event loop publishes an immutable Snapshot (snapshot.py) of what an operator wants to see; a
ThreadingHTTPServer in a daemon thread (server.py) answers from the latest one, so a request never
touches torch, the chain or the live round objects. Nothing here is imported by the round engine:
the node calls StatusBoard.round_finished and the board does the rest.
"""
