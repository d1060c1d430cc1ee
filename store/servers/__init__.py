"""How the store talks to its servers: Redis clients for a single server or a Redis Cluster
(``connections``), hedged, deadline-bound reads over a primary and its replicas (``hedging``), and a circuit
breaker per server (``breaker``). Used by the flag store and the person store; imports nothing above it."""
