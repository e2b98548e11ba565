"""Past one process: the engine's shards placed by Ray, stateless gateways, events on Redis.

    concert-queue serve --cluster      # or CLUSTER=ray, or make run-cluster

- `host`: a shard host, one Ray actor per shard (named, restarted by Ray), running the engine's
  actors of its shard on its own fenced journal on PostgreSQL;
- `gateway`: a process serving the whole HTTP and websocket contract on the shared port, its
  reads from a replica fed by the shards' events, its commands sent to the owning shard;
- `client`: calls to the shards, batched per shard; `replica`: the gateways' read model;
- `bus`: committed events from the hosts to the gateways over Redis pub/sub;
- `wire`: the engine's answers and errors as plain values between processes;
- `launch`: starts (or joins) the Ray cluster, the hosts and the gateways, and supervises them.

Nothing here decides anything: the engine (engine/) does, exactly as in one process.
"""
